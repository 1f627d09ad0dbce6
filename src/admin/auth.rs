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
use tokio::sync::OnceCell;

use super::{AdminError, Layout, render};
use crate::app::AppState;
use crate::db::{self, admin as q};
use crate::http::client_ip::client_ip;

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
    if let Some(pw) = state.config.admin_password.clone() {
        let password_hash = blocking(move || hash_password(&pw.0)).await?;
        return Ok(Credentials {
            username,
            password_hash,
        });
    }
    if let Some(password_hash) = state.db.read(q::password_hash).await? {
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
        let scheme = if state.config.tls.is_some() {
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

/// Failed logins per address in a sliding window; addresses over the limit are refused until
/// their oldest failure leaves the window. The clock is a parameter so tests need not sleep.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// Whether `ip` has used up its failed logins at `now`.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&ip) {
            None => false,
            Some(times) => {
                prune(times, now);
                times.len() >= LIMIT_FAILURES
            }
        }
    }

    /// Records a failed login of `ip` at `now`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bound the memory an attacker with many addresses can make us use.
        if map.len() > 10_000 {
            map.retain(|_, t| {
                prune(t, now);
                !t.is_empty()
            });
        }
        let times = map.entry(ip).or_default();
        prune(times, now);
        times.push_back(now);
        while times.len() > LIMIT_FAILURES {
            times.pop_front();
        }
    }

    /// How long until `ip` may try again.
    pub fn retry_after(&self, ip: IpAddr, now: Instant) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip)
            .and_then(|t| t.front())
            .map_or(Duration::ZERO, |first| {
                LIMIT_WINDOW.saturating_sub(now.saturating_duration_since(*first))
            })
    }
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
    if state.config.admin_cookie_secure {
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
    let limiter = &state.admin.limiter;
    if limiter.blocked(ip, Instant::now()) {
        let wait = limiter.retry_after(ip, Instant::now()).as_secs().max(1);
        let mut resp = LoginPage::respond(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            Some("Too many failed logins from your address. Wait a minute, then try again."),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
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
    let creds = match credentials(&state, None).await {
        Ok(c) => c.clone(),
        Err(e) => return e.into_response(),
    };
    let (username, password) = (field("username"), field("password"));
    let ok = match blocking(move || verify(&creds, &username, &password)).await {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    if !ok {
        limiter.failed(ip, Instant::now());
        tracing::warn!(%ip, "failed admin login");
        return LoginPage::respond(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            Some("Wrong user name or password."),
        );
    }
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
    fn the_limiter_refuses_the_sixth_failure_within_a_minute() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..LIMIT_FAILURES as u64 {
            assert!(!l.blocked(ip, t0 + Duration::from_secs(i)));
            l.failed(ip, t0 + Duration::from_secs(i));
        }
        assert!(l.blocked(ip, t0 + Duration::from_secs(10)));
        assert!(!l.blocked(other, t0 + Duration::from_secs(10)));
        assert_eq!(
            l.retry_after(ip, t0 + Duration::from_secs(10)),
            Duration::from_secs(50)
        );
        // The first failure leaves the window: one more try.
        assert!(!l.blocked(ip, t0 + Duration::from_secs(60)));
        assert!(!l.blocked(ip, t0 + Duration::from_secs(61)));
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
