//! Sessions in a cookie, and the CSRF token every state-changing admin form carries.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headers::HeaderMapExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AdminError, Settings};
use crate::db::{Db, sessions as q};
use crate::http::ServerSettings;

/// The session cookie.
pub const SESSION_COOKIE: &str = "qg_session";
/// A session's lifetime, from login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Largest form body the CSRF check reads.
const MAX_FORM: usize = 16 * 1024;

/// The logged-in user of a request, put in its extensions by [`require_session`].
#[derive(Clone, Debug)]
pub struct Session {
    /// Who.
    pub username: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub(super) token_hash: String,
}

/// A new random token: 256 bits, URL-safe base64.
pub(super) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

pub(super) fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .typed_get::<headers::Cookie>()
        .and_then(|c| c.get(name).map(str::to_owned))
}

/// Whether the admin cookies are marked `Secure`: `admin_cookie_secure`, or the gateway
/// serves HTTPS itself (then the cookie must never travel in clear).
pub(super) fn cookies_secure(settings: &Settings, server: &ServerSettings) -> bool {
    settings.cookie_secure || server.https()
}

pub(super) fn set_cookie(
    secure: bool,
    name: &str,
    value: &str,
    max_age: Option<Duration>,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(super) fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Requires a session on every route it wraps; on a state-changing method also requires the
/// session's CSRF token in the form body. Without a session: to the login page (back here
/// after logging in).
pub async fn require_session(
    State(db): State<Db>,
    req: Request,
    next: Next,
) -> Result<Response, AdminError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let session = match cookie(req.headers(), SESSION_COOKIE) {
        None => None,
        Some(token) => {
            let hash = token_hash(&token);
            db.read(move |c| Ok(q::session(c, &hash, now_ms)?.map(|s| (s, hash))))
                .await?
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
        return Ok(Redirect::to(&target).into_response());
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
            Err(resp) => return Ok(resp),
        }
    };
    let mut req = req;
    req.extensions_mut().insert(session);
    Ok(next.run(req).await)
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

pub(super) fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
