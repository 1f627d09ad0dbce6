//! Shared inbound HTTP pieces: Basic auth, how request headers are recorded, who the client
//! is, the layers. Outbound calls have their own module, [`crate::outbound`].

/// The placeholder `HTTP_AUTH_PASSWORD` of `gateway.env.example`: the gateway warns at start
/// while it is still in use (everyone who read the example knows it).
pub const EXAMPLE_PASSWORD: &str = "change-me-to-a-long-random-password";

pub mod client_ip;
pub mod limits;
pub mod payment_guard;
pub mod request_log;
mod server;

pub use server::ServerSettings;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use headers::HeaderMapExt;
use headers::authorization::{Authorization, Basic, Bearer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// HTTP Basic credentials QIWI must present on `/payment`.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
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

/// Most bytes of headers stored with one logged request: the JSON object [`headers_json`]
/// returns is never longer. Real QIWI requests carry well under 1 KiB of headers.
pub const STORED_HEADERS_CAP: usize = 4096;
/// Most bytes stored of one header value; the rest is replaced by a note of its length.
const STORED_VALUE_CAP: usize = 512;
/// Room kept at the end of the object for the note of headers left out.
const OMITTED_NOTE: usize = 64;

/// The request headers as a JSON object for the log, at most [`STORED_HEADERS_CAP`] bytes,
/// with secrets masked: `Authorization` keeps its scheme and (for Basic) the user name, and a
/// value that is no known scheme becomes `***`; cookies become `***`. See
/// [`headers_json_capped`].
pub fn headers_json(headers: &HeaderMap) -> String {
    headers_json_capped(headers, STORED_HEADERS_CAP)
}

/// [`headers_json`] within `cap` bytes (at least 128): each value is cut to 512 bytes (with a
/// note of its full length); headers that no longer fit are left out, and the key `"…"` says
/// how many and how many bytes they held. Whoever sends the request does not decide how much
/// is stored.
pub fn headers_json_capped(headers: &HeaderMap, cap: usize) -> String {
    let budget = cap.max(128) - OMITTED_NOTE;
    let mut map = serde_json::Map::new();
    let mut used = 2; // the braces
    let (mut omitted, mut omitted_bytes) = (0usize, 0usize);
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
        let full = values.join(", ");
        let raw_len = name.as_str().len() + full.len();
        let value = cut(full);
        let entry = serde_json::Value::from(value);
        // `"name":value,` as serialised.
        let len = name.as_str().len() + 4 + entry.to_string().len();
        if omitted > 0 || used + len > budget {
            omitted += 1;
            omitted_bytes += raw_len;
            continue;
        }
        used += len;
        map.insert(name.as_str().to_owned(), entry);
    }
    if omitted > 0 {
        map.insert(
            "…".to_owned(),
            format!("{omitted} more headers ({omitted_bytes} bytes) not stored").into(),
        );
    }
    serde_json::Value::Object(map).to_string()
}

/// One header value as the log stores it: `Authorization`-like values masked as
/// [`headers_json`] does, cookies `***`, anything else cut to 512 bytes. `name` is matched
/// case-insensitively (used for headers that arrive as text, e.g. from the original's log).
pub fn stored_header_value(name: &str, value: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "authorization" | "proxy-authorization" => mask_credentials(value),
        "cookie" | "set-cookie" => "***".to_owned(),
        _ => cut(value.to_owned()),
    }
}

/// `value` cut to [`STORED_VALUE_CAP`] bytes on a character boundary, with its full length.
fn cut(value: String) -> String {
    if value.len() <= STORED_VALUE_CAP {
        return value;
    }
    let mut end = STORED_VALUE_CAP;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes]", &value[..end], value.len())
}

/// Authentication schemes whose name is kept in the log (IANA HTTP Authentication Scheme
/// Registry); anything else is stored as `***` only, since it may be the secret itself.
const KNOWN_SCHEMES: &[&str] = &[
    "basic",
    "bearer",
    "digest",
    "negotiate",
    "ntlm",
    "hoba",
    "mutual",
    "vapid",
    "scram-sha-1",
    "scram-sha-256",
    "dpop",
    "privatetoken",
    "concealed",
    "aws4-hmac-sha256",
];

/// An `Authorization` value as it is logged: `<scheme> ***`, `Basic <user>:***`, or `***`
/// when the value is not `<known scheme> SP <credentials>` (RFC 9110 §11.4): a value without
/// that shape (`qiwi:s3cret`, `Basic<TAB>…`, `Basic,…`) may be the secret itself.
fn mask_credentials(value: &str) -> String {
    let Some((scheme, rest)) = value.trim().split_once(' ') else {
        return "***".to_owned();
    };
    if !KNOWN_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        return "***".to_owned();
    }
    if scheme.eq_ignore_ascii_case("basic")
        && let Some(user) = STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, _)| u.to_owned()))
    {
        // Cut like any value: the user name is the sender's choice too.
        return format!("{scheme} {}:***", cut(user));
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
        assert_eq!(mask_credentials("opaque"), "***");
        for malformed in [
            "qiwi:s3cret-pass",
            "Basic\tcWl3aTpzM2NyZXQ=",
            "Basic,cWl3aTpzM2NyZXQ=",
            "s3cret-pass extra",
            "",
        ] {
            assert_eq!(mask_credentials(malformed), "***", "{malformed}");
        }
    }

    #[test]
    fn stored_headers_never_exceed_the_cap() {
        let mut h = HeaderMap::new();
        for i in 0..75 {
            let name = axum::http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap();
            h.insert(name, HeaderValue::from_str(&"\"".repeat(4000)).unwrap());
        }
        h.insert("user-agent", HeaderValue::from_static("qiwi"));
        for cap in [128, 1024, STORED_HEADERS_CAP] {
            let json = headers_json_capped(&h, cap);
            assert!(json.len() <= cap, "{} > {cap}", json.len());
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let note = v["…"].as_str().unwrap();
            assert!(note.contains("more headers"), "{note}");
        }
        // Small heads are stored whole.
        let small = with_auth("Bearer x");
        assert_eq!(headers_json(&small), r#"{"authorization":"Bearer ***"}"#);
    }
}
