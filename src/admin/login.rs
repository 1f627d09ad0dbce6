//! The login and logout pages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::limiter::LoginRefused;
use super::password::{blocking, credentials, verify};
use super::session::{
    SESSION_COOKIE, SESSION_TTL, Session, cookie, cookies_secure, ct_eq, form_field, random_token,
    set_cookie, token_hash,
};
use super::{AdminError, AdminState, Layout, Settings, render};
use crate::db::{self, Db, sessions as q};
use crate::http::ServerSettings;
use crate::http::client_ip::client_ip;

/// The login form's CSRF cookie (double submit: there is no session yet to hold a token).
const LOGIN_CSRF_COOKIE: &str = "qg_login_csrf";

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
        secure: bool,
        status: StatusCode,
        next: String,
        error: Option<&'static str>,
    ) -> Response {
        LoginPage::respond_info(secure, status, next, error, None)
    }

    /// [`LoginPage::respond`] with a message that is not an error (e.g. "logged out").
    fn respond_info(
        secure: bool,
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
            set_cookie(secure, LOGIN_CSRF_COOKIE, &token, None),
        );
        resp
    }
}

/// `GET /admin/login`.
pub async fn login_get(
    State(settings): State<Arc<Settings>>,
    State(server): State<Arc<ServerSettings>>,
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
        cookies_secure(&settings, &server),
        StatusCode::OK,
        safe_next(next.as_deref()),
        None,
        logged_out.then_some("You are logged out."),
    )
}

/// `POST /admin/login`: checks the limit, the form token, then the credentials.
pub async fn login_post(
    State(admin): State<AdminState>,
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    State(server): State<Arc<ServerSettings>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AdminError> {
    // Behind a trusted reverse proxy, the client it names: else every browser would share
    // the proxy's limit.
    let secure = cookies_secure(&settings, &server);
    let ip = client_ip(peer.ip(), &headers, &server.trusted_proxies);
    let field = |name| form_field(&body, name).unwrap_or_default();
    let next = safe_next(Some(&field("next")));
    let form_token = field("csrf");
    let cookie_token = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if form_token.is_empty() || !ct_eq(&form_token, &cookie_token) {
        return Ok(LoginPage::respond(
            secure,
            StatusCode::FORBIDDEN,
            next,
            Some("The form had expired. Please log in again."),
        ));
    }
    let limiter = &admin.limiter;
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
                LoginPage::respond(secure, StatusCode::TOO_MANY_REQUESTS, next, Some(message));
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(resp);
        }
    };
    let served = super::password::Served {
        addr: server.listen_addr,
        https: server.https(),
    };
    let creds = credentials(&admin, &db, &settings, served).await?.clone();
    let (username, password) = (field("username"), field("password"));
    // The permit moves into the blocking task: it is held while argon2 really runs, even
    // when the client goes away and this handler is dropped.
    let ok = blocking(move || {
        let _permit = permit;
        verify(&creds, &username, &password)
    })
    .await?;
    if !ok {
        tracing::warn!(%ip, "failed admin login");
        return Ok(LoginPage::respond(
            secure,
            StatusCode::UNAUTHORIZED,
            next,
            Some("Wrong user name or password."),
        ));
    }
    limiter.succeeded(attempt);
    let token = random_token();
    let hash = token_hash(&token);
    let row = q::SessionRow {
        username: settings.username.clone(),
        csrf_token: random_token(),
    };
    let now = chrono::Utc::now();
    let ttl_ms = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
    db.writer()
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
        .await?;
    tracing::info!(%ip, "admin logged in");
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(secure, SESSION_COOKIE, &token, Some(SESSION_TTL)),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(secure, LOGIN_CSRF_COOKIE, "", Some(Duration::ZERO)),
    );
    Ok(resp)
}

/// `POST /admin/logout` (behind the session and CSRF check): ends the session.
pub async fn logout(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    State(server): State<Arc<ServerSettings>>,
    axum::Extension(session): axum::Extension<Session>,
) -> Result<Response, AdminError> {
    let hash = session.token_hash.clone();
    db.writer()
        .write(move |c| q::delete_session(c, &hash))
        .await?;
    let mut resp = Redirect::to("/admin/login?logged_out=1").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            cookies_secure(&settings, &server),
            SESSION_COOKIE,
            "",
            Some(Duration::ZERO),
        ),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
