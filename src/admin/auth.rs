//! Who may use the admin UI: the credentials (configured, or generated on the first start),
//! the login page, sessions in a cookie, CSRF tokens on every state-changing form, and the
//! limit on failed logins per address.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use askama::Template;
use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headers::HeaderMapExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use super::{AdminError, Layout, render};
use crate::app::AppState;
use crate::db::{self, admin as q};
use crate::http::client_ip::{self, client_ip};

/// The session cookie.
pub const SESSION_COOKIE: &str = "qg_session";
/// The login form's CSRF cookie (double submit: there is no session yet to hold a token).
const LOGIN_CSRF_COOKIE: &str = "qg_login_csrf";
/// A session's lifetime, from login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed logins an address may make within `LIMIT_WINDOW`.
pub const LIMIT_FAILURES: usize = 5;
/// The window of the failed-login limit.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(60);
/// Largest form body the CSRF check reads.
const MAX_FORM: usize = 16 * 1024;
/// Length of a generated admin password (alphanumeric: about 143 bits).
const GENERATED_PASSWORD_LEN: usize = 24;

/// The admin UI's shared state: credentials, resolved once, and the failed-login limiter.
#[derive(Clone, Default)]
pub struct AdminState {
    credentials: Arc<OnceCell<Credentials>>,
    /// Failed logins per address.
    pub limiter: Arc<LoginLimiter>,
    /// Slots of running CSV exports.
    pub exports: super::transactions::ExportSlots,
}

/// The one admin account: its user name and the argon2 hash of its password.
#[derive(Clone)]
struct Credentials {
    username: String,
    password_hash: String,
}

/// The logged-in user of a request, put in its extensions by [`require_session`].
#[derive(Clone, Debug)]
pub struct Session {
    /// Who.
    pub username: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    token_hash: String,
}

/// Resolves the credentials on the first start (generating, storing and logging a password
/// when none is configured), so the generated one is printed before anyone asks for it.
/// `addr` is where the server listens, for the admin URL in that log line.
pub async fn init(state: &AppState, addr: SocketAddr) -> Result<(), AdminError> {
    credentials(state, Some(addr)).await.map(|_| ())
}

async fn credentials(
    state: &AppState,
    addr: Option<SocketAddr>,
) -> Result<&Credentials, AdminError> {
    state
        .admin
        .credentials
        .get_or_try_init(|| load_credentials(state, addr))
        .await
}

async fn load_credentials(
    state: &AppState,
    addr: Option<SocketAddr>,
) -> Result<Credentials, AdminError> {
    let username = state.config.admin_username.clone();
    let stored = state.db.read(q::password_hash).await?;
    if let Some(pw) = state.config.admin_password.clone() {
        // The configured password's hash is kept like a generated one's: when the next
        // start finds a different ADMIN_PASSWORD, every session ends (operators are told to
        // recover a lost or leaked password that way).
        if let Some(hash) = stored.clone() {
            let pw = pw.clone();
            let check = hash.clone();
            if blocking(move || Ok(password_matches(&check, &pw.0))).await? {
                return Ok(Credentials {
                    username,
                    password_hash: hash,
                });
            }
        }
        let password_hash = blocking(move || hash_password(&pw.0)).await?;
        let mine = password_hash.clone();
        state
            .db
            .writer()
            .write(move |c| q::replace_password_hash(c, &mine, &db::now_text()))
            .await?;
        if stored.is_some() {
            tracing::warn!("ADMIN_PASSWORD changed: every admin session has been ended");
        }
        return Ok(Credentials {
            username,
            password_hash,
        });
    }
    if let Some(password_hash) = stored {
        return Ok(Credentials {
            username,
            password_hash,
        });
    }
    let password = generate_password();
    let pw = password.clone();
    let hash = blocking(move || hash_password(&pw)).await?;
    let mine = hash.clone();
    let stored = state
        .db
        .writer()
        .write(move |c| q::store_password_hash(c, &mine, &db::now_text()))
        .await?;
    if stored == hash {
        let addr = addr.unwrap_or(state.config.listen_addr);
        let host = match addr.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let scheme = if state.config.https() {
            "https"
        } else {
            "http"
        };
        // Printed once, on purpose: only its hash is kept.
        tracing::warn!(
            "ADMIN_PASSWORD is not set: generated the admin password once. Log in at \
             {scheme}://{host}:{port}/admin as `{username}` with password `{password}` (it \
             is not shown again; set ADMIN_PASSWORD to choose your own).",
            port = addr.port(),
        );
    }
    Ok(Credentials {
        username,
        password_hash: stored,
    })
}

fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), GENERATED_PASSWORD_LEN)
}

/// Shortest password `admin set-password` accepts.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Stores `password`'s hash as the admin password (replacing any stored one) and ends every
/// session, so a stolen session does not outlive the change. A configured `ADMIN_PASSWORD`
/// still wins over it.
pub async fn set_password(db: &crate::db::Db, password: String) -> Result<(), AdminError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::Hash(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let hash = blocking(move || hash_password(&password)).await?;
    db.writer()
        .write(move |c| q::replace_password_hash(c, &hash, &db::now_text()))
        .await?;
    Ok(())
}

fn hash_password(password: &str) -> Result<String, AdminError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Hash(e.to_string()))
}

/// Whether `password` is the one `hash` (a PHC string) was made from.
fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether `username`/`password` are the admin's. Always runs the slow hash, whatever the
/// user name, so the time taken does not tell whether the name was right.
fn verify(c: &Credentials, username: &str, password: &str) -> Result<bool, AdminError> {
    let parsed =
        PasswordHash::new(&c.password_hash).map_err(|e| AdminError::Hash(e.to_string()))?;
    let pass_ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    let user_ok: bool = Sha256::digest(username.as_bytes())
        .ct_eq(&Sha256::digest(c.username.as_bytes()))
        .into();
    Ok(user_ok & pass_ok)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AdminError::Db(e.into()))?
}

/// Failed logins from all addresses together within `LIMIT_WINDOW`: a botnet with many
/// addresses guesses no faster than this (OWASP Authentication Cheat Sheet: throttle
/// globally as well as per account and address).
pub const GLOBAL_FAILURES: usize = 30;
/// Address groups the limiter tracks at once; beyond, new groups are refused until entries
/// leave the window, so a burst from many addresses cannot grow its memory without bound.
const MAX_TRACKED: usize = 10_000;

/// Why a login attempt was not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// The address group, or all addresses together, used up the failed logins of the
    /// window: try again after this long.
    Limited(Duration),
    /// As many password checks as the machine has cores are running: try again shortly.
    Busy,
}

/// The failed-login limit and the password-check cap.
///
/// An attempt takes its slot *before* the password is checked ([`LoginLimiter::begin`]
/// counts it as a failure at once; a success gives the slot back), so concurrent attempts
/// cannot all pass the check before any is counted. Addresses are grouped by
/// [`client_ip::group`] (IPv6 by /64). At most one argon2 check per core runs at once
/// (each takes 19 MiB), so memory stays bounded under any burst; beyond, attempts are
/// refused [`LoginRefused::Busy`] without touching the limit. The clock is a parameter so
/// tests need not sleep.
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
    checks: Arc<Semaphore>,
}

#[derive(Default)]
struct LimiterState {
    per_group: HashMap<IpAddr, VecDeque<Instant>>,
    global: VecDeque<Instant>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

/// A login attempt that holds its slot in the limit; the password check's permit travels
/// separately (into the blocking task, so it is held as long as the check really runs).
#[derive(Debug)]
pub struct LoginAttempt {
    group: IpAddr,
    at: Instant,
}

impl LoginLimiter {
    /// A limiter running at most `concurrent_checks` password checks at once.
    pub fn new(concurrent_checks: usize) -> LoginLimiter {
        LoginLimiter {
            state: Mutex::new(LimiterState::default()),
            checks: Arc::new(Semaphore::new(concurrent_checks.max(1))),
        }
    }

    /// Takes `ip`'s slot for one attempt at `now`, counted as a failure until
    /// [`LoginLimiter::succeeded`], and a permit to check the password.
    pub fn begin(
        &self,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(LoginAttempt, OwnedSemaphorePermit), LoginRefused> {
        let group = client_ip::group(ip);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        prune(&mut st.global, now);
        if st.global.len() >= GLOBAL_FAILURES {
            return Err(LoginRefused::Limited(wait(&st.global, now)));
        }
        if !st.per_group.contains_key(&group) && st.per_group.len() >= MAX_TRACKED {
            st.per_group.retain(|_, t| {
                prune(t, now);
                !t.is_empty()
            });
            if st.per_group.len() >= MAX_TRACKED {
                return Err(LoginRefused::Limited(LIMIT_WINDOW));
            }
        }
        let times = st.per_group.entry(group).or_default();
        prune(times, now);
        if times.len() >= LIMIT_FAILURES {
            return Err(LoginRefused::Limited(wait(times, now)));
        }
        let permit = self
            .checks
            .clone()
            .try_acquire_owned()
            .map_err(|_| LoginRefused::Busy)?;
        times.push_back(now);
        st.global.push_back(now);
        Ok((LoginAttempt { group, at: now }, permit))
    }

    /// The attempt logged in: its slot is given back.
    pub fn succeeded(&self, attempt: LoginAttempt) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = st.per_group.get_mut(&attempt.group)
            && let Some(i) = times.iter().position(|t| *t == attempt.at)
        {
            times.remove(i);
        }
        if let Some(i) = st.global.iter().position(|t| *t == attempt.at) {
            st.global.remove(i);
        }
    }
}

/// How long until the oldest of `times` leaves the window.
fn wait(times: &VecDeque<Instant>, now: Instant) -> Duration {
    times.front().map_or(Duration::ZERO, |first| {
        LIMIT_WINDOW.saturating_sub(now.saturating_duration_since(*first))
    })
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= LIMIT_WINDOW)
    {
        times.pop_front();
    }
}

/// A new random token: 256 bits, URL-safe base64.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .typed_get::<headers::Cookie>()
        .and_then(|c| c.get(name).map(str::to_owned))
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    // Served over HTTPS by the gateway itself: the cookie must never travel in clear.
    if state.config.admin_cookie_secure || state.config.https() {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Where to go after logging in: only a path inside the admin UI (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/admin" || n.starts_with("/admin/") || n.starts_with("/admin?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/admin".to_owned(),
    }
}

/// Requires a session on every route it wraps; on a state-changing method also requires the
/// session's CSRF token in the form body. Without a session: to the login page (back here
/// after logging in).
pub async fn require_session(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let session = match cookie(req.headers(), SESSION_COOKIE) {
        None => None,
        Some(token) => {
            let hash = token_hash(&token);
            match state
                .db
                .read(move |c| Ok(q::session(c, &hash, now_ms)?.map(|s| (s, hash))))
                .await
            {
                Ok(s) => s,
                Err(e) => return AdminError::from(e).into_response(),
            }
        }
    };
    let Some((row, token_hash)) = session else {
        let target = if req.method() == Method::GET {
            // Nested under /admin, the request's own URI has lost that prefix.
            let uri = req
                .extensions()
                .get::<OriginalUri>()
                .map_or_else(|| req.uri().clone(), |o| o.0.clone());
            let here = uri.path_and_query().map_or("/admin", |pq| pq.as_str());
            let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            format!("/admin/login?next={next}")
        } else {
            "/admin/login".to_owned()
        };
        return Redirect::to(&target).into_response();
    };
    let session = Session {
        username: row.username,
        csrf: row.csrf_token,
        token_hash,
    };
    let req = if matches!(*req.method(), Method::GET | Method::HEAD) {
        req
    } else {
        match check_csrf(req, &session.csrf).await {
            Ok(req) => req,
            Err(resp) => return resp,
        }
    };
    let mut req = req;
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// Reads the form body, checks its `csrf` field against `expected`, and hands the request on
/// with its body restored.
async fn check_csrf(req: Request, expected: &str) -> Result<Request, Response> {
    // A file upload (multipart; the reconciliation page) carries the token in its action URL:
    // its body is the handler's to stream and limit.
    let multipart = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"multipart/form-data"));
    if multipart {
        let given = req
            .uri()
            .query()
            .and_then(|q| form_field(q.as_bytes(), "csrf"));
        if !given.as_deref().is_some_and(|g| ct_eq(g, expected)) {
            tracing::warn!(path = %req.uri().path(), "admin upload refused: CSRF token missing or wrong");
            return Err(AdminError::Csrf.into_response());
        }
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let given = form_field(&bytes, "csrf");
    if !given.as_deref().is_some_and(|g| ct_eq(g, expected)) {
        tracing::warn!(path = %parts.uri.path(), "admin form refused: CSRF token missing or wrong");
        return Err(AdminError::Csrf.into_response());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    next: String,
    error: Option<&'static str>,
    info: Option<&'static str>,
}

impl LoginPage {
    /// The page with a fresh form token, set in its cookie.
    fn respond(
        state: &AppState,
        status: StatusCode,
        next: String,
        error: Option<&'static str>,
    ) -> Response {
        LoginPage::respond_info(state, status, next, error, None)
    }

    /// [`LoginPage::respond`] with a message that is not an error (e.g. "logged out").
    fn respond_info(
        state: &AppState,
        status: StatusCode,
        next: String,
        error: Option<&'static str>,
        info: Option<&'static str>,
    ) -> Response {
        let token = random_token();
        let page = LoginPage {
            layout: Layout::anonymous("Log in", token.clone()),
            next,
            error,
            info,
        };
        let mut resp = render(status, &page);
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, LOGIN_CSRF_COOKIE, &token, None),
        );
        resp
    }
}

/// `GET /admin/login`.
pub async fn login_get(
    State(state): State<AppState>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let next = query
        .as_deref()
        .and_then(|q| form_field(q.as_bytes(), "next"));
    let logged_out = query
        .as_deref()
        .and_then(|q| form_field(q.as_bytes(), "logged_out"))
        .is_some();
    LoginPage::respond_info(
        &state,
        StatusCode::OK,
        safe_next(next.as_deref()),
        None,
        logged_out.then_some("You are logged out."),
    )
}

/// `POST /admin/login`: checks the limit, the form token, then the credentials.
pub async fn login_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Behind a trusted reverse proxy, the client it names: else every browser would share
    // the proxy's limit.
    let ip = client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    let field = |name| form_field(&body, name).unwrap_or_default();
    let next = safe_next(Some(&field("next")));
    let form_token = field("csrf");
    let cookie_token = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if form_token.is_empty() || !ct_eq(&form_token, &cookie_token) {
        return LoginPage::respond(
            &state,
            StatusCode::FORBIDDEN,
            next,
            Some("The form had expired. Please log in again."),
        );
    }
    let limiter = &state.admin.limiter;
    // The slot is taken (the attempt counted) before the password is checked.
    let (attempt, permit) = match limiter.begin(ip, Instant::now()) {
        Ok(a) => a,
        Err(refused) => {
            let (wait, message) = match refused {
                LoginRefused::Limited(wait) => (
                    wait,
                    "Too many failed logins from your address. Wait a minute, then try again.",
                ),
                LoginRefused::Busy => (
                    Duration::from_secs(1),
                    "The server is busy checking other logins. Try again in a moment.",
                ),
            };
            if matches!(refused, LoginRefused::Limited(_)) {
                tracing::warn!(%ip, "admin login refused: too many failed logins");
            }
            let mut resp =
                LoginPage::respond(&state, StatusCode::TOO_MANY_REQUESTS, next, Some(message));
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    };
    let creds = match credentials(&state, None).await {
        Ok(c) => c.clone(),
        Err(e) => return e.into_response(),
    };
    let (username, password) = (field("username"), field("password"));
    // The permit moves into the blocking task: it is held while argon2 really runs, even
    // when the client goes away and this handler is dropped.
    let ok = match blocking(move || {
        let _permit = permit;
        verify(&creds, &username, &password)
    })
    .await
    {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    if !ok {
        tracing::warn!(%ip, "failed admin login");
        return LoginPage::respond(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            Some("Wrong user name or password."),
        );
    }
    limiter.succeeded(attempt);
    let token = random_token();
    let hash = token_hash(&token);
    let row = q::SessionRow {
        username: state.config.admin_username.clone(),
        csrf_token: random_token(),
    };
    let now = chrono::Utc::now();
    let ttl_ms = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
    let stored = state
        .db
        .writer()
        .write(move |c| {
            q::insert_session(
                c,
                &hash,
                &row,
                &db::format_time(now),
                now.timestamp_millis(),
                now.timestamp_millis().saturating_add(ttl_ms),
            )
        })
        .await;
    if let Err(e) = stored {
        return AdminError::from(e).into_response();
    }
    tracing::info!(%ip, "admin logged in");
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &token, Some(SESSION_TTL)),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, LOGIN_CSRF_COOKIE, "", Some(Duration::ZERO)),
    );
    resp
}

/// `POST /admin/logout` (behind the session and CSRF check): ends the session.
pub async fn logout(
    State(state): State<AppState>,
    axum::Extension(session): axum::Extension<Session>,
) -> Response {
    let hash = session.token_hash.clone();
    if let Err(e) = state
        .db
        .writer()
        .write(move |c| q::delete_session(c, &hash))
        .await
    {
        return AdminError::from(e).into_response();
    }
    let mut resp = Redirect::to("/admin/login?logged_out=1").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", Some(Duration::ZERO)),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_counts_before_checking_and_refuses_the_sixth_attempt() {
        let l = LoginLimiter::new(100);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        // Attempts still being checked count: the sixth concurrent one is refused.
        let held: Vec<_> = (0..LIMIT_FAILURES as u64)
            .map(|i| l.begin(ip, t0 + Duration::from_secs(i)).unwrap())
            .collect();
        assert_eq!(
            l.begin(ip, t0 + Duration::from_secs(10)).err(),
            Some(LoginRefused::Limited(Duration::from_secs(50)))
        );
        assert!(l.begin(other, t0 + Duration::from_secs(10)).is_ok());
        // A success gives its slot back.
        let (attempt, _permit) = held.into_iter().next().unwrap();
        l.succeeded(attempt);
        assert!(l.begin(ip, t0 + Duration::from_secs(10)).is_ok());
        assert!(l.begin(ip, t0 + Duration::from_secs(11)).is_err());
        // Slots leave the window.
        assert!(l.begin(ip, t0 + Duration::from_secs(70)).is_ok());
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_budget_and_all_share_the_global_one() {
        let l = LoginLimiter::new(1000);
        let t0 = Instant::now();
        let mut ok = 0;
        for i in 0..15u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, i, 0, 0, 1]);
            if l.begin(ip, t0).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, LIMIT_FAILURES);
        let mut ok = LIMIT_FAILURES;
        for i in 0..1000u32 {
            let ip = IpAddr::from([10, 1, (i >> 8) as u8, i as u8]);
            if l.begin(ip, t0).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, GLOBAL_FAILURES);
    }

    #[test]
    fn password_checks_beyond_the_cap_are_refused_busy_without_counting() {
        let l = LoginLimiter::new(2);
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let a = l.begin(ip(1), t0).unwrap();
        let _b = l.begin(ip(2), t0).unwrap();
        assert_eq!(l.begin(ip(3), t0).err(), Some(LoginRefused::Busy));
        drop(a);
        assert!(l.begin(ip(3), t0).is_ok());
        // The busy refusal did not use up ip(3)'s slots: four more fit.
        for _ in 0..LIMIT_FAILURES - 1 {
            drop(l.begin(ip(3), t0).unwrap());
        }
        assert!(matches!(l.begin(ip(3), t0), Err(LoginRefused::Limited(_))));
    }

    #[test]
    fn next_stays_inside_the_admin_ui() {
        assert_eq!(
            safe_next(Some("/admin/transactions?a=1")),
            "/admin/transactions?a=1"
        );
        assert_eq!(safe_next(Some("/admin")), "/admin");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/admin//evil.example",
            "/adminx",
            "/payment",
            "/admin/\\evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin");
    }

    #[test]
    fn passwords_verify_only_with_the_right_name_and_password() {
        let c = Credentials {
            username: "admin".into(),
            password_hash: hash_password("correct horse").unwrap(),
        };
        assert!(c.password_hash.starts_with("$argon2id$"));
        assert!(verify(&c, "admin", "correct horse").unwrap());
        assert!(!verify(&c, "admin", "correct hors").unwrap());
        assert!(!verify(&c, "root", "correct horse").unwrap());
        let g = generate_password();
        assert_eq!(g.len(), GENERATED_PASSWORD_LEN);
        assert!(g.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(g, generate_password());
    }
}
