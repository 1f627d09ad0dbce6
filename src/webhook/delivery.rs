//! One HTTP attempt: the payload, the headers, and how the answer is classified.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use url::Url;

use super::signing::Signer;
use crate::db::outbox::Due;

/// How much of an answer's body is kept in the attempt history.
pub const BODY_PREFIX: usize = 1024;

/// Sends deliveries to the merchant's backend: one shared client (its connection pool is
/// reused by every attempt), a fixed URL, and the signer when a secret is configured.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    url: Url,
    signer: Option<Signer>,
    timeout: Duration,
    success: Vec<u16>,
}

/// How one attempt ended, before the retry policy judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The HTTP status, when an answer came.
    pub http_status: Option<u16>,
    /// `None` when the backend acknowledged (200 or 201, or a `webhook_success_statuses` entry).
    pub failure: Option<Failure>,
    /// The answer's `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    /// The first [`BODY_PREFIX`] bytes of the answer's body (cut at a character boundary).
    pub body: String,
    /// How long the attempt took.
    pub duration: Duration,
    /// The request as sent.
    pub request: SentRequest,
}

/// A webhook request as it was sent, for the attempt history (migration 0008).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentRequest {
    /// The URL, masked like check-config does (`ops::redact::url`): user info, query values
    /// and fragment as `***`.
    pub url: String,
    /// The headers the gateway set, in the order sent, one `name: value` a line (the HTTP
    /// client adds `host`, `accept` and `content-length` itself).
    pub headers: String,
    /// The JSON body, byte for byte.
    pub body: String,
}

/// Why an attempt did not count as delivered. Displayed as `kind: detail`, which is what the
/// history and `last_error` store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An answer other than a success status (200 or 201 unless configured; redirects are
    /// not followed).
    Status(u16),
    /// No complete answer within the timeout.
    Timeout(Duration),
    /// No connection: refused, unreachable, name not resolved.
    Connect(String),
    /// The TLS handshake failed (certificate, protocol).
    Tls(String),
    /// The connection broke after it was made: closed or reset before a full answer.
    Connection(String),
}

impl Failure {
    /// The kind alone: `status`, `timeout`, `connect`, `tls` or `connection`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Status(_) => "status",
            Failure::Timeout(_) => "timeout",
            Failure::Connect(_) => "connect",
            Failure::Tls(_) => "tls",
            Failure::Connection(_) => "connection",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match self {
            Failure::Status(s) => {
                let reason = StatusCode::from_u16(*s)
                    .ok()
                    .and_then(|s| s.canonical_reason());
                match reason {
                    Some(r) => write!(f, "{kind}: {s} {r}"),
                    None => write!(f, "{kind}: {s}"),
                }
            }
            Failure::Timeout(t) => write!(f, "{kind}: no complete answer within {t:?}"),
            Failure::Connect(d) | Failure::Tls(d) | Failure::Connection(d) => {
                write!(f, "{kind}: {d}")
            }
        }
    }
}

impl Deliverer {
    /// A deliverer for `url` whose attempts give up after `timeout` and never follow redirects.
    pub fn new(
        url: Url,
        signer: Option<Signer>,
        timeout: Duration,
    ) -> Result<Deliverer, reqwest::Error> {
        // One attempt is one request: our own schedule decides about retries.
        let client = crate::outbound::client(timeout)?;
        Ok(Deliverer {
            client,
            url,
            signer,
            timeout,
            success: vec![200, 201],
        })
    }

    /// Counts `statuses` (`webhook_success_statuses`) as delivered instead of 200 and 201.
    pub fn with_success_statuses(mut self, statuses: Vec<u16>) -> Deliverer {
        if !statuses.is_empty() {
            self.success = statuses;
        }
        self
    }

    /// POSTs `due` once, signed with `timestamp` (Unix seconds) when a secret is configured.
    pub async fn send(&self, due: &Due, timestamp: i64) -> Sent {
        let body = payload(due);
        let id = message_id(&due.code);
        let mut headers: Vec<(&'static str, String)> = vec![
            ("content-type", "application/json".to_owned()),
            ("user-agent", crate::USER_AGENT.to_owned()),
            ("webhook-id", id.clone()),
        ];
        if let Some(signer) = &self.signer {
            headers.push(("webhook-timestamp", timestamp.to_string()));
            headers.push((
                "webhook-signature",
                signer.sign(&id, timestamp, body.as_bytes()),
            ));
        }
        let mut req = self.client.post(self.url.clone());
        for (name, value) in &headers {
            req = req.header(*name, value.as_str());
        }
        let request = SentRequest {
            url: crate::ops::redact::url(&self.url),
            headers: headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect(),
            body: body.clone(),
        };
        let started = Instant::now();
        let sent = req.body(body).send().await;
        let (http_status, failure, retry_after, body) = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let success = self.success.contains(&status);
                if !success && (200..300).contains(&status) {
                    tracing::warn!(
                        status,
                        "the webhook receiver answered {status}, which is not counted as \
                         delivered; if it means success, add it to webhook_success_statuses \
                         (env WEBHOOK_SUCCESS_STATUSES, e.g. \"200,201,{status}\")"
                    );
                }
                let failure = (!success).then_some(Failure::Status(status));
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                // The status decides; a body that breaks off changes nothing.
                (Some(status), failure, retry_after, body_prefix(resp).await)
            }
            Err(e) => (None, Some(self.classify(e)), None, String::new()),
        };
        Sent {
            http_status,
            failure,
            retry_after,
            body,
            duration: started.elapsed(),
            request,
        }
    }

    fn classify(&self, e: reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure::Timeout(self.timeout);
        }
        let connect = e.is_connect();
        // The URL may carry credentials: it never reaches a log or the database.
        let detail = chain(&e.without_url());
        if connect && is_tls(&detail) {
            Failure::Tls(detail)
        } else if connect {
            Failure::Connect(detail)
        } else {
            Failure::Connection(detail)
        }
    }
}

/// The `webhook-id` of a payment: the same on every attempt and resend. Built from QIWI's
/// `txn_id` (1-20 digits, so always a valid header) rather than our row id, which a fresh
/// database would hand out again for another payment.
pub fn message_id(code: &str) -> String {
    format!("qiwi_{code}")
}

/// The JSON body, byte for byte: the original product's fields, unchanged and first,
/// `{"id":"123","account":"...","code":"...","sum":45.0,"created_at":"YYYY-MM-DD HH:MM:SS",`
/// then the added ones (issue 11 point 10): `"amount":"45.00"` (the exact sum as a decimal
/// string), `"txn_date":"YYYYMMDDHHMMSS"` (as QIWI sent it) and `"extra":{...}` (the other
/// request parameters; `{}` should the stored text not be a JSON object).
pub fn payload(d: &Due) -> String {
    let body = original_payload(d);
    if !d.test {
        return body;
    }
    // A test payment from the admin UI: one added field, the original ones unchanged.
    match body.strip_suffix('}') {
        Some(open) => format!(r#"{open},"test":true}}"#),
        None => body,
    }
}

fn original_payload(d: &Due) -> String {
    let text = |s: &str| serde_json::Value::from(s).to_string();
    let extra = match serde_json::from_str::<serde_json::Value>(&d.extra) {
        Ok(v @ serde_json::Value::Object(_)) => v.to_string(),
        _ => "{}".to_owned(),
    };
    format!(
        r#"{{"id":"{}","account":{},"code":{},"sum":{},"created_at":{},"amount":"{}","txn_date":{},"extra":{}}}"#,
        d.id,
        text(&d.account),
        text(&d.code),
        sum_json(d.sum_minor),
        text(&d.created_at),
        crate::qiwi::Amount::from_minor(d.sum_minor),
        text(&d.txn_date),
        extra
    )
}

/// A sum in minor units as a JSON number, written from the integer so it is exact at any
/// size: `4500` → `45.0`, `1050` → `10.5`, `1045` → `10.45`: the text a float of that value
/// prints as, for any sum below 10^13 (beyond that a float loses kopecks; this text does not).
fn sum_json(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    let (units, cents) = (m / 100, m % 100);
    if cents % 10 == 0 {
        format!("{sign}{units}.{}", cents / 10)
    } else {
        format!("{sign}{units}.{cents:02}")
    }
}

/// Reads at most [`BODY_PREFIX`] bytes of the body. A short body is read to its end, so the
/// connection goes back to the pool; a longer one is cut and its connection dropped.
async fn body_prefix(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < BODY_PREFIX {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_PREFIX - buf.len();
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    match std::str::from_utf8(&buf) {
        Ok(s) => s.to_owned(),
        // Only the cut split a character: drop its first bytes.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&buf[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(&buf).into_owned(),
    }
}

/// An error and its sources, `outer: inner: ...`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        // hyper repeats an inner error's text in the outer one now and then.
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Whether a connect error's text is a TLS failure. rustls is reqwest's private dependency,
/// so its error type cannot be matched; its messages are distinctive enough.
fn is_tls(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "invalid peer",
        "received corrupt message",
    ]
    .iter()
    .any(|w| d.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(account: &str, sum_minor: i64) -> Due {
        Due {
            id: 123,
            account: account.into(),
            code: "563456456745".into(),
            sum_minor,
            created_at: "2022-02-10 12:00:00".into(),
            txn_date: "20220210150000".into(),
            extra: r#"{"ccy":"RUB","prv_id":"7"}"#.into(),
            attempts: 0,
            due_ms: 0,
            test: false,
        }
    }

    #[test]
    fn payload_is_the_original_products_shape() {
        assert_eq!(
            payload(&due("123456", 4500)),
            r#"{"id":"123","account":"123456","code":"563456456745","sum":45.0,"created_at":"2022-02-10 12:00:00","amount":"45.00","txn_date":"20220210150000","extra":{"ccy":"RUB","prv_id":"7"}}"#
        );
        let mut broken = due("1", 5);
        broken.extra = "not json".into();
        let v: serde_json::Value = serde_json::from_str(&payload(&broken)).unwrap();
        assert_eq!(
            (v["amount"].as_str(), v["extra"].to_string().as_str()),
            (Some("0.05"), "{}")
        );
    }

    #[test]
    fn a_test_payment_adds_test_true_and_keeps_every_original_field() {
        let mut d = due("123456", 4500);
        d.test = true;
        let body = payload(&d);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["test"], true);
        let original: serde_json::Value =
            serde_json::from_str(&payload(&due("123456", 4500))).unwrap();
        for (k, val) in original.as_object().unwrap() {
            assert_eq!(&v[k], val, "{k}");
        }
    }

    #[test]
    fn the_documented_example_is_what_is_sent() {
        let doc = include_str!("../../docs/webhooks.md");
        let body = payload(&due("123456", 4500));
        let signer = Signer::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = signer.sign(&message_id("563456456745"), 1_700_000_000, body.as_bytes());
        assert!(doc.contains(&format!("\n{body}\n")), "{body}");
        assert!(doc.contains("webhook-id: qiwi_563456456745\n"));
        assert!(
            doc.contains(&format!("webhook-signature: {signature}\n")),
            "{signature}"
        );
    }

    #[test]
    fn hostile_accounts_stay_valid_json() {
        let account = "a\"b\\c</script>\u{1}é";
        let body = payload(&due(account, 1));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["account"], account);
        assert_eq!(v["sum"], 0.01);
    }

    #[test]
    fn sums_print_exactly_as_their_float_would() {
        let cases = [(0, "0.0"), (1, "0.01"), (10, "0.1"), (1045, "10.45")];
        for (minor, text) in cases {
            assert_eq!(sum_json(minor), text);
        }
        assert_eq!(sum_json(1050), "10.5");
        // Any realistic sum prints as its f64 does, so a receiver sees what it always saw.
        let samples = (0..100_000).chain([999_999_999_999, 123_456_789_012_345]);
        for minor in samples {
            let float = serde_json::to_string(&(minor as f64 / 100.0)).unwrap();
            assert_eq!(sum_json(minor), float, "{minor}");
        }
    }

    #[test]
    fn failures_print_their_kind_first() {
        assert_eq!(
            Failure::Status(500).to_string(),
            "status: 500 Internal Server Error"
        );
        assert_eq!(Failure::Status(599).to_string(), "status: 599");
        assert!(
            Failure::Timeout(Duration::from_secs(1))
                .to_string()
                .starts_with("timeout: ")
        );
        assert_eq!(
            Failure::Connect("refused".into()).to_string(),
            "connect: refused"
        );
    }
}
