//! Shared HTTP pieces: Basic auth, how request headers are recorded, who the client is.

pub mod client_ip;
pub mod request_log;
pub mod trust;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use headers::HeaderMapExt;
use headers::authorization::{Authorization, Basic, Bearer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{BasicAuth, Secret};

/// The client for every call to the merchant's backend (account check, webhook): the whole
/// call, connection included, bounded by `timeout`; redirects never followed (a 3xx is an
/// answer, not a new address to send payment data to); no automatic retries (our own schedule
/// decides); our User-Agent; the CA certificates of [`trust::Roots::system`]. Building does
/// not depend on the trust store: with no CA certificate at all it still succeeds, and each
/// `https` call then fails its handshake (a `tls` failure, retried like any other).
pub fn outbound_client(timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    trust::apply(reqwest::Client::builder(), trust::Roots::system())
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .user_agent(crate::USER_AGENT)
        .build()
}

/// Whether `headers` carry the configured Basic credentials. The comparison takes the same
/// time whatever the input (hashes of equal length, compared in constant time), so timing
/// tells an attacker nothing about how much of a guess was right.
pub fn basic_auth_ok(headers: &HeaderMap, expected: &BasicAuth) -> bool {
    let Some(Authorization(given)) = headers.typed_get::<Authorization<Basic>>() else {
        return false;
    };
    let user = ct_eq(given.username(), &expected.username);
    let pass = ct_eq(given.password(), &expected.password.0);
    (user & pass).into()
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
pub fn bearer_ok(headers: &HeaderMap, token: &Secret) -> bool {
    headers
        .typed_get::<Authorization<Bearer>>()
        .is_some_and(|Authorization(given)| ct_eq(given.token(), &token.0).into())
}

fn ct_eq(a: &str, b: &str) -> subtle::Choice {
    Sha256::digest(a.as_bytes()).ct_eq(&Sha256::digest(b.as_bytes()))
}

/// The request headers as a JSON object for the log, with secrets masked: `Authorization`
/// keeps its scheme and (for Basic) the user name; cookies are dropped to `***`.
pub fn headers_json(headers: &HeaderMap) -> String {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| {
                let text = String::from_utf8_lossy(v.as_bytes());
                match name.as_str() {
                    "authorization" | "proxy-authorization" => mask_credentials(&text),
                    "cookie" => "***".to_owned(),
                    _ => text.into_owned(),
                }
            })
            .collect();
        map.insert(name.as_str().to_owned(), values.join(", ").into());
    }
    serde_json::Value::Object(map).to_string()
}

fn mask_credentials(value: &str) -> String {
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic")
        && let Some(user) = STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, _)| u.to_owned()))
    {
        return format!("{scheme} {user}:***");
    }
    format!("{scheme} ***")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn basic_auth_accepts_only_the_exact_pair() {
        let want = BasicAuth {
            username: "qiwi".into(),
            password: Secret("s3cret".into()),
        };
        let b = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert!(basic_auth_ok(&with_auth(&b("qiwi:s3cret")), &want));
        assert!(!basic_auth_ok(&with_auth(&b("qiwi:s3cre")), &want));
        assert!(!basic_auth_ok(&with_auth(&b("qiwi:s3cret2")), &want));
        assert!(!basic_auth_ok(&with_auth(&b("QIWI:s3cret")), &want));
        assert!(!basic_auth_ok(&with_auth("Bearer s3cret"), &want));
        assert!(!basic_auth_ok(&HeaderMap::new(), &want));
    }

    #[test]
    fn logged_headers_mask_secrets() {
        let mut h = with_auth(&format!("Basic {}", STANDARD.encode("qiwi:s3cret")));
        h.insert("cookie", HeaderValue::from_static("sid=abc"));
        h.append("x-multi", HeaderValue::from_static("1"));
        h.append("x-multi", HeaderValue::from_static("2"));
        let json: serde_json::Value = serde_json::from_str(&headers_json(&h)).unwrap();
        assert_eq!(json["authorization"], "Basic qiwi:***");
        assert_eq!(json["cookie"], "***");
        assert_eq!(json["x-multi"], "1, 2");
        assert_eq!(mask_credentials("Bearer abc.def"), "Bearer ***");
        assert_eq!(mask_credentials("Basic !!notbase64"), "Basic ***");
        assert_eq!(mask_credentials("opaque"), "opaque ***");
    }
}
