//! Reading a check backend's answer (`QIWI_CHECK_URL`) into a [`Verdict`]: pure, fuzzed
//! (issue 11 points 2 and 3; the contract is `docs/check-backend.md`).

use super::ResultCode;
use super::answer::{Field, unsafe_in_xml};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Largest check backend body read, in bytes; a longer JSON body is a broken answer (1).
pub const MAX_BODY: usize = 64 * 1024;
/// Most display fields passed on; the rest are dropped (and logged).
pub const MAX_FIELDS: usize = 10;
/// Longest field name; names are `[A-Za-z0-9_]{1,32}`.
pub const MAX_NAME: usize = 32;
/// Longest field value or comment passed on, in characters; longer ones are cut (and logged).
pub const MAX_VALUE: usize = 255;

/// What the merchant's backend said about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200: the account exists (result 0), with the display fields it gave (maybe none).
    Valid(Vec<Field>),
    /// 200 with a JSON `result` among the fatal codes: passed on to QIWI with its comment.
    Refused {
        /// The code the backend chose.
        result: ResultCode,
        /// Its `comment`, bounded and cleaned, if it gave one.
        comment: Option<String>,
    },
    /// Another status that is not temporary (404, 410, 400, 3xx, ...): result 5.
    NotFound,
    /// 5xx, 408, 425, 429, timeout, no connection, or an invalid JSON verdict: result 1.
    Unavailable,
}

/// Reads a check backend's answer: its status, `Content-Type` and body (at most
/// [`MAX_BODY`] bytes; one byte more means it was cut). Pure apart from warning log lines
/// about what it had to drop or cut. Rules (`shared/spec/qiwi-protocol.md`, check):
/// - 408, 425, 429 and every 5xx: 1 (passing, logged); any other status but 200: 5, logged
///   as a warning (404 and 410, the documented "not found", as info; 3xx by the caller).
/// - 200 with a body that is no JSON object: valid, no fields (the original product) — unless
///   the content type says JSON and the body is not JSON at all: 1 (a broken backend).
/// - 200 with a JSON object: `fields` (object, order kept, or array of `{"name","value"}`),
///   `result` (0 or a fatal code 4, 5, 7, 79, 241, 242, 243, 300; any other value: 1) and
///   `comment`; unknown keys ignored; every field and comment bounded and cleaned.
pub fn judge(status: u16, content_type: Option<&str>, body: &[u8]) -> Verdict {
    match status {
        200 => {}
        408 | 425 | 429 | 500..=599 => {
            tracing::warn!(status, "check backend answered a temporary status");
            return Verdict::Unavailable;
        }
        // The documented "account not found": a line for the operator, no warning.
        404 | 410 => {
            tracing::info!(status, "check backend: account not found (answering 5)");
            return Verdict::NotFound;
        }
        // Redirects are logged by the caller, which has their Location (`check::Checker`).
        300..=399 => return Verdict::NotFound,
        // Every other status (201, 204, 400, 401, 403, ...) is unexpected: only 200 is valid
        // (docs/check-backend.md), and a backend answering these is most likely misconfigured.
        _ => {
            tracing::warn!(
                status,
                "check backend answered an unexpected status (only 200 means valid): \
                 answering 5, account not found"
            );
            return Verdict::NotFound;
        }
    }
    let json_type = content_type.is_some_and(is_json);
    let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let starts_object = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if body.len() > MAX_BODY {
        if json_type || starts_object {
            tracing::warn!("check backend's JSON answer is too long");
            return Verdict::Unavailable;
        }
        return Verdict::Valid(Vec::new());
    }
    if !starts_object {
        if json_type && serde_json::from_slice::<IgnoredAny>(text).is_err() {
            tracing::warn!("check backend answered invalid JSON under a JSON content type");
            return Verdict::Unavailable;
        }
        return Verdict::Valid(Vec::new());
    }
    let answer: BackendAnswer = match serde_json::from_slice(text) {
        Ok(a) => a,
        Err(e) if json_type => {
            tracing::warn!(error = %e, "check backend answered invalid JSON");
            return Verdict::Unavailable;
        }
        // A text body that merely starts with `{`: the original product's "200 is valid".
        Err(_) => return Verdict::Valid(Vec::new()),
    };
    answer.verdict()
}

/// Whether a `Content-Type` is JSON (`application/json`, `application/problem+json`, ...).
fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The JSON object a check backend may answer; unknown keys are ignored.
#[derive(Debug, Deserialize)]
struct BackendAnswer {
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    comment: Option<serde_json::Value>,
    #[serde(default)]
    fields: Option<RawFields>,
}

impl BackendAnswer {
    fn verdict(self) -> Verdict {
        let result = match &self.result {
            None | Some(serde_json::Value::Null) => Some(ResultCode::Ok),
            Some(serde_json::Value::Number(n)) => n.as_u64().and_then(fatal_or_ok),
            Some(serde_json::Value::String(s)) => s.parse().ok().and_then(fatal_or_ok),
            Some(_) => None,
        };
        let Some(result) = result else {
            tracing::warn!(
                result = %self.result.unwrap_or_default(),
                "check backend gave a result that is not 0 or a fatal code (4, 5, 7, 79, 241, \
                 242, 243, 300): answering 1"
            );
            return Verdict::Unavailable;
        };
        if result != ResultCode::Ok {
            let comment = match self.comment {
                Some(serde_json::Value::String(c)) => Some(clean("comment", &c)),
                _ => None,
            }
            .filter(|c| !c.is_empty());
            return Verdict::Refused { result, comment };
        }
        Verdict::Valid(self.fields.map(RawFields::bounded).unwrap_or_default())
    }
}

/// 0 or a fatal code a backend may pass on; `None` for anything else.
fn fatal_or_ok(n: u64) -> Option<ResultCode> {
    Some(match n {
        0 => ResultCode::Ok,
        4 => ResultCode::BadAccount,
        5 => ResultCode::AccountNotFound,
        7 => ResultCode::Forbidden,
        79 => ResultCode::AccountInactive,
        241 => ResultCode::SumTooSmall,
        242 => ResultCode::SumTooLarge,
        243 => ResultCode::CannotCheck,
        300 => ResultCode::Other,
        _ => return None,
    })
}

/// Text made safe for a terminal: control and XML-unsafe characters removed, at most
/// [`MAX_VALUE`] characters; a cut is logged.
fn clean(what: &str, s: &str) -> String {
    let kept: String = s.chars().filter(|&c| !unsafe_in_xml(c)).collect();
    if kept.chars().count() > MAX_VALUE {
        tracing::warn!(what, limit = MAX_VALUE, "check backend text too long: cut");
        return kept.chars().take(MAX_VALUE).collect();
    }
    kept
}

/// `fields` as the backend wrote them, in order; a value of another shape is ignored.
#[derive(Debug, Default)]
struct RawFields(Vec<(String, serde_json::Value)>);

impl RawFields {
    /// At most [`MAX_FIELDS`] fields with valid names and text values, cleaned and cut.
    fn bounded(self) -> Vec<Field> {
        let mut out = Vec::new();
        for (name, value) in self.0 {
            let valid_name = (1..=MAX_NAME).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name {
                tracing::warn!(name = %name.escape_debug(), "check backend field with an invalid name dropped");
                continue;
            }
            let value: Cow<'_, str> = match &value {
                serde_json::Value::String(s) => Cow::Borrowed(s),
                serde_json::Value::Number(n) => Cow::Owned(n.to_string()),
                serde_json::Value::Bool(b) => Cow::Owned(b.to_string()),
                _ => {
                    tracing::warn!(name, "check backend field that is no text dropped");
                    continue;
                }
            };
            if out.len() == MAX_FIELDS {
                tracing::warn!(
                    limit = MAX_FIELDS,
                    "check backend gave too many fields: rest dropped"
                );
                break;
            }
            out.push(Field {
                value: clean("field", &value),
                name,
            });
        }
        out
    }
}

impl<'de> Deserialize<'de> for RawFields {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldsVisitor)
    }
}

struct FieldsVisitor;

/// One element of the array form: `{"name": "...", "value": ...}`.
#[derive(Deserialize)]
struct NamedField {
    #[serde(default)]
    name: Option<serde_json::Value>,
    #[serde(default)]
    value: Option<serde_json::Value>,
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = RawFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or an array of {name, value}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            out.push((k, v));
        }
        Ok(RawFields(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawFields, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<serde_json::Value>()? {
            match serde_json::from_value::<NamedField>(item) {
                Ok(NamedField {
                    name: Some(serde_json::Value::String(name)),
                    value: Some(value),
                }) => out.push((name, value)),
                _ => tracing::warn!("check backend field without a text name and a value dropped"),
            }
        }
        Ok(RawFields(out))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawFields, E> {
        Ok(ignored())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawFields, E> {
        Ok(ignored())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawFields, E> {
        Ok(ignored())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawFields, E> {
        Ok(ignored())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawFields, E> {
        Ok(ignored())
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawFields, E> {
        Ok(RawFields::default())
    }
}

fn ignored() -> RawFields {
    tracing::warn!("check backend `fields` is neither an object nor an array: ignored");
    RawFields::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    fn fields(v: &Verdict) -> Vec<(&str, &str)> {
        match v {
            Verdict::Valid(f) => f
                .iter()
                .map(|f| (f.name.as_str(), f.value.as_str()))
                .collect(),
            other => panic!("not valid: {other:?}"),
        }
    }

    #[test]
    fn statuses_map_to_passing_or_fatal() {
        for s in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(judge(s, None, b""), Verdict::Unavailable, "{s}");
        }
        for s in [201, 204, 301, 302, 400, 401, 403, 404, 410, 422] {
            assert_eq!(judge(s, None, b""), Verdict::NotFound, "{s}");
        }
    }

    #[test]
    fn a_plain_200_is_valid_without_fields() {
        for (ct, body) in [
            (None, &b""[..]),
            (Some("text/plain"), b"OK"),
            (Some("text/html"), b"{not json"),
            (JSON, b"true"),
            (JSON, b"[1,2]"),
            (JSON, b"\"ok\""),
        ] {
            assert_eq!(judge(200, ct, body), Verdict::Valid(vec![]), "{body:?}");
        }
    }

    #[test]
    fn invalid_json_under_a_json_type_is_temporary() {
        for body in [
            &b""[..],
            b"{",
            b"{\"fields\":",
            b"nope",
            b"{\"a\":1,\"a\":2,}",
        ] {
            assert_eq!(judge(200, JSON, body), Verdict::Unavailable, "{body:?}");
        }
        let long = format!("{{\"fields\":{{\"a\":\"{}\"}}}}", "x".repeat(MAX_BODY));
        assert_eq!(judge(200, JSON, long.as_bytes()), Verdict::Unavailable);
    }

    #[test]
    fn fields_in_object_and_array_form_keep_their_order() {
        let v = judge(
            200,
            JSON,
            br#"{"fields": {"disp2": "b", "disp1": "a", "debt": -120.5}, "x": 1}"#,
        );
        assert_eq!(
            fields(&v),
            [("disp2", "b"), ("disp1", "a"), ("debt", "-120.5")]
        );
        let v = judge(
            200,
            Some("application/vnd.api+json"),
            br#"{"fields": [{"name": "z", "value": "1"}, {"name": "a", "value": "2"}, {"value": "x"}]}"#,
        );
        assert_eq!(fields(&v), [("z", "1"), ("a", "2")]);
        // no content type, still a JSON object: read
        assert_eq!(
            fields(&judge(200, None, br#" {"fields":{"n":"v"}}"#)),
            [("n", "v")]
        );
    }

    #[test]
    fn fields_are_bounded_and_cleaned() {
        let many: Vec<String> = (0..15).map(|i| format!("\"f{i}\":\"v{i}\"")).collect();
        let body = format!("{{\"fields\":{{{}}}}}", many.join(","));
        let v = judge(200, JSON, body.as_bytes());
        assert_eq!(fields(&v).len(), MAX_FIELDS);
        assert_eq!(fields(&v)[9], ("f9", "v9"));

        let long_name = "n".repeat(MAX_NAME + 1);
        let ok_name = "n".repeat(MAX_NAME);
        let body = serde_json::json!({"fields": [
            {"name": long_name, "value": "x"},
            {"name": "bad name", "value": "x"},
            {"name": "имя", "value": "x"},
            {"name": "", "value": "x"},
            {"name": ok_name, "value": "y".repeat(300)},
            {"name": "ctl", "value": "a\u{0}b\u{1b}[31mc\r\nd\u{FFFF}"},
            {"name": "obj", "value": {"a": 1}},
            {"name": "null", "value": null},
            {"name": "xml", "value": "<b>&\"'</b>"},
        ]})
        .to_string();
        let v = judge(200, JSON, body.as_bytes());
        let f = fields(&v);
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(f[0].0, ok_name);
        assert_eq!(f[0].1.chars().count(), MAX_VALUE);
        assert_eq!(f[1], ("ctl", "ab[31mcd"));
        assert_eq!(f[2], ("xml", "<b>&\"'</b>"));
        // a `fields` of another shape is ignored, the account stays valid
        for shape in ["\"text\"", "42", "true", "null"] {
            let body = format!("{{\"fields\":{shape}}}");
            assert_eq!(judge(200, JSON, body.as_bytes()), Verdict::Valid(vec![]));
        }
    }

    #[test]
    fn results_among_the_fatal_codes_are_passed_on() {
        let v = judge(
            200,
            JSON,
            br#"{"result": 79, "comment": "Account blocked"}"#,
        );
        assert_eq!(
            v,
            Verdict::Refused {
                result: ResultCode::AccountInactive,
                comment: Some("Account blocked".into())
            }
        );
        for (n, code) in [
            (4, 4),
            (5, 5),
            (7, 7),
            (241, 241),
            (242, 242),
            (243, 243),
            (300, 300),
        ] {
            let body = format!("{{\"result\": {n}}}");
            match judge(200, JSON, body.as_bytes()) {
                Verdict::Refused { result, comment } => {
                    assert_eq!((result.code(), comment), (code, None));
                }
                other => panic!("{n}: {other:?}"),
            }
        }
        assert_eq!(
            judge(200, JSON, br#"{"result": "79"}"#),
            Verdict::Refused {
                result: ResultCode::AccountInactive,
                comment: None
            }
        );
        assert_eq!(
            fields(&judge(200, JSON, br#"{"result": 0, "fields": {"a": "b"}}"#)),
            [("a", "b")]
        );
        for bad in [
            "1",
            "90",
            "-5",
            "5.5",
            "1e2",
            "\"x\"",
            "[]",
            "{}",
            "true",
            "18446744073709551616",
        ] {
            let body = format!("{{\"result\": {bad}}}");
            assert_eq!(
                judge(200, JSON, body.as_bytes()),
                Verdict::Unavailable,
                "{bad}"
            );
        }
    }
}
