//! Webhook delivery end to end: the real gateway, a real merchant backend on loopback.
//!
//! Most tests drive a [`Worker`] step by step (`run_due`) on a [`ManualClock`] with zero
//! jitter, on an app started without a URL (so no background worker races them): retries are
//! reached by moving the clock, never by sleeping. A few tests run the background worker the
//! app starts, to prove it wakes, retries, restarts and shuts down as it should.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use qiwi_gateway::config::{Config, Secret};
use qiwi_gateway::webhook::Worker;
use qiwi_gateway::webhook::clock::{ManualClock, fixed_jitter};
use sha2::Sha256;
use tokio::io::AsyncReadExt;
use url::Url;

use crate::helpers::*;

// ---------------------------------------------------------------------------------------------
// The merchant's backend.

/// One request the backend received.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A backend whose path says how to answer:
/// `/status/{code}` (302 points at `/status/200`), `/hang` (answers after 5 s),
/// `/slow/{ms}`, `/flaky/{n}` (500 for the first n requests, then 200),
/// `/retry-after/{value}` (503 with that `Retry-After`), `/big` (500 with a 5000-byte body).
#[derive(Clone, Default)]
struct Receiver(Arc<ReceiverState>);

#[derive(Default)]
struct ReceiverState {
    hits: Mutex<Vec<Hit>>,
    current: AtomicUsize,
    max_concurrent: AtomicUsize,
}

impl Receiver {
    async fn spawn() -> (Receiver, String) {
        let r = Receiver::default();
        let base = spawn_backend(Router::new().fallback(answer).with_state(r.clone())).await;
        (r, base)
    }

    fn hits(&self) -> Vec<Hit> {
        self.0.hits.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.path).collect()
    }

    fn max_concurrent(&self) -> usize {
        self.0.max_concurrent.load(Ordering::SeqCst)
    }
}

async fn answer(State(r): State<Receiver>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path().to_owned();
    let seen_here = {
        let mut hits = r.0.hits.lock().unwrap();
        hits.push(Hit {
            path: path.clone(),
            headers: parts.headers,
            body,
        });
        hits.iter().filter(|h| h.path == path).count()
    };
    let now = r.0.current.fetch_add(1, Ordering::SeqCst) + 1;
    r.0.max_concurrent.fetch_max(now, Ordering::SeqCst);
    let response = respond(&path, seen_here).await;
    r.0.current.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn respond(path: &str, seen_here: usize) -> Response {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (what, arg) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let status = |code: u16| StatusCode::from_u16(code).unwrap();
    match what {
        "status" => {
            let code: u16 = arg.parse().unwrap();
            let mut resp = (status(code), format!("status {code}")).into_response();
            if code == 302 {
                resp.headers_mut()
                    .insert(header::LOCATION, "/status/200".parse().unwrap());
            }
            resp
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".into_response()
        }
        "slow" => {
            tokio::time::sleep(Duration::from_millis(arg.parse().unwrap())).await;
            "slow ok".into_response()
        }
        "flaky" => {
            let failures: usize = arg.parse().unwrap();
            if seen_here <= failures {
                (StatusCode::INTERNAL_SERVER_ERROR, "not yet").into_response()
            } else {
                "ok".into_response()
            }
        }
        "retry-after" => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, arg.to_owned())],
            "later",
        )
            .into_response(),
        "big" => (StatusCode::INTERNAL_SERVER_ERROR, "é".repeat(2500)).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A backend that reads the request and closes the connection without answering. Returns its
/// URL and how many connections it took.
async fn spawn_closing_backend() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = socket.read(&mut buf).await;
            });
        }
    });
    (format!("http://{addr}/close"), accepted)
}

// ---------------------------------------------------------------------------------------------
// A gateway (without a URL, so without its own worker) plus a worker driven by hand.

struct Harness {
    app: TestApp,
    worker: Worker,
    clock: ManualClock,
}

/// The clock starts a minute ahead, so the payments a test makes are due.
fn test_clock() -> ManualClock {
    ManualClock::new(Utc::now() + chrono::Duration::seconds(60))
}

/// A webhook configuration for `url` with a 1 s timeout, then `tweak`.
fn webhook_config(base: &Config, url: &str, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut cfg = base.clone();
    cfg.webhook.url = Some(Url::parse(url).unwrap());
    cfg.webhook.timeout = Duration::from_secs(1);
    tweak(&mut cfg);
    cfg
}

async fn harness(url: &str, tweak: impl FnOnce(&mut Config)) -> Harness {
    let app = spawn_app().await;
    assert!(app.state.config.webhook.url.is_none());
    let cfg = webhook_config(&app.state.config, url, tweak);
    let clock = test_clock();
    let worker = Worker::new(
        app.state.db.clone(),
        cfg.webhook.clone(),
        Arc::new(clock.clone()),
        fixed_jitter(0.0),
    )
    .unwrap();
    Harness { app, worker, clock }
}

impl Harness {
    async fn pay(&self, txn_id: &str, sum: &str) {
        assert_eq!(self.app.pay(txn_id, "79001234567", sum).await.result(), 0);
    }

    async fn run_due(&self) -> usize {
        self.worker.run_due().await.unwrap()
    }

    fn now_ms(&self) -> i64 {
        use qiwi_gateway::webhook::clock::Clock as _;
        self.clock.now().timestamp_millis()
    }
}

/// The delivery state of transaction `id`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    status: i64,
    attempts: i64,
    last_error: Option<String>,
    due_ms: Option<i64>,
    delivered_at: Option<String>,
    created_at: String,
}

fn row(app: &TestApp, id: i64) -> Row {
    app.db()
        .query_row(
            "SELECT status, attempts, last_error, delivery_due_ms, delivered_at, created_at
             FROM qiwi_transaction WHERE id = ?1",
            [id],
            |r| {
                Ok(Row {
                    status: r.get(0)?,
                    attempts: r.get(1)?,
                    last_error: r.get(2)?,
                    due_ms: r.get(3)?,
                    delivered_at: r.get(4)?,
                    created_at: r.get(5)?,
                })
            },
        )
        .unwrap()
}

/// One row of `qiwi_webhook_attempt`.
#[derive(Debug, Clone, PartialEq)]
struct AttemptRow {
    http_status: Option<u16>,
    error: Option<String>,
    response_body: String,
}

fn history(app: &TestApp, id: i64) -> Vec<AttemptRow> {
    let conn = app.db();
    let mut stmt = conn
        .prepare(
            "SELECT http_status, error, response_body FROM qiwi_webhook_attempt
             WHERE transaction_id = ?1 ORDER BY id",
        )
        .unwrap();
    stmt.query_map([id], |r| {
        Ok(AttemptRow {
            http_status: r.get(0)?,
            error: r.get(1)?,
            response_body: r.get(2)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Waits (polling) until `done` holds, failing after `within`.
async fn eventually(within: Duration, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Success.

async fn assert_delivered_by(code: u16) {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/status/{code}"), |_| {}).await;
    h.pay("1001", "10.45").await;
    assert_eq!(h.run_due().await, 1);

    let r = row(&h.app, 1);
    assert_eq!((r.status, r.attempts, r.due_ms), (1, 1, None));
    assert_eq!(r.last_error, None);
    assert!(r.delivered_at.is_some());
    assert_eq!(
        history(&h.app, 1),
        [AttemptRow {
            http_status: Some(code),
            error: None,
            response_body: format!("status {code}"),
        }]
    );
    // Delivered means done: nothing is due any more, however late it gets.
    h.clock.advance(Duration::from_secs(86_400));
    assert_eq!(h.run_due().await, 0);
    assert_eq!(receiver.hits().len(), 1);
}

#[tokio::test]
async fn a_200_marks_the_payment_delivered() {
    assert_delivered_by(200).await;
}

#[tokio::test]
async fn a_201_marks_the_payment_delivered() {
    assert_delivered_by(201).await;
}

// ---------------------------------------------------------------------------------------------
// Every other outcome is a failed attempt: recorded with its kind, retried on the schedule.

/// Pays once against `url` and checks: the attempt is recorded with `http_status` and an
/// error of `kind`, the payment stays status 0 and is due 2.5 s later (5 s initial delay, zero
/// jitter), not before; then it is attempted again and due 5 s after that.
async fn assert_failure_is_retried(url: &str, http_status: Option<u16>, kind: &str) -> Harness {
    let h = harness(url, |_| {}).await;
    h.pay("2001", "1").await;
    assert_eq!(h.run_due().await, 1);

    let first = history(&h.app, 1);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].http_status, http_status);
    let error = first[0].error.clone().expect("a failure has an error");
    assert!(error.starts_with(&format!("{kind}: ")), "{error}");
    let r = row(&h.app, 1);
    assert_eq!((r.status, r.attempts), (0, 1));
    assert_eq!(r.last_error.as_deref(), Some(error.as_str()));
    assert_eq!(r.delivered_at, None);
    assert_eq!(r.due_ms, Some(h.now_ms() + 2_500));

    // Not due before its time.
    h.clock.advance(Duration::from_millis(2_499));
    assert_eq!(h.run_due().await, 0);
    h.clock.advance(Duration::from_millis(1));
    assert_eq!(h.run_due().await, 1);
    let second = history(&h.app, 1);
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].http_status, http_status);
    assert!(second[1].error.as_deref().unwrap().starts_with(kind));
    let r = row(&h.app, 1);
    assert_eq!((r.status, r.attempts), (0, 2));
    assert_eq!(r.due_ms, Some(h.now_ms() + 5_000));
    h
}

#[tokio::test]
async fn a_202_is_a_failed_attempt_and_retried() {
    let (receiver, base) = Receiver::spawn().await;
    assert_failure_is_retried(&format!("{base}/status/202"), Some(202), "status").await;
    assert_eq!(receiver.hits().len(), 2);
}

#[tokio::test]
async fn a_302_is_not_followed_and_retried() {
    let (receiver, base) = Receiver::spawn().await;
    assert_failure_is_retried(&format!("{base}/status/302"), Some(302), "status").await;
    // Following the redirect would have reached /status/200.
    assert_eq!(receiver.paths(), ["/status/302", "/status/302"]);
}

#[tokio::test]
async fn a_404_is_a_failed_attempt_and_retried() {
    let (_receiver, base) = Receiver::spawn().await;
    assert_failure_is_retried(&format!("{base}/status/404"), Some(404), "status").await;
}

#[tokio::test]
async fn a_500_is_a_failed_attempt_and_retried() {
    let (_receiver, base) = Receiver::spawn().await;
    let h = assert_failure_is_retried(&format!("{base}/status/500"), Some(500), "status").await;
    assert_eq!(
        row(&h.app, 1).last_error.as_deref(),
        Some("status: 500 Internal Server Error")
    );
}

#[tokio::test]
async fn a_backend_hanging_past_the_timeout_is_a_failed_attempt_and_retried() {
    let (receiver, base) = Receiver::spawn().await;
    let h = assert_failure_is_retried(&format!("{base}/hang"), None, "timeout").await;
    // Two attempts, each cut at the 1 s timeout, not at the backend's 5 s: measured by the
    // worker itself around each attempt (start-up and a busy machine are not counted).
    let conn = h.app.db();
    let mut stmt = conn
        .prepare("SELECT duration_ms FROM qiwi_webhook_attempt WHERE transaction_id = 1")
        .unwrap();
    let durations: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(durations.len(), 2);
    for ms in durations {
        assert!((1_000..5_000).contains(&ms), "an attempt took {ms} ms");
    }
    assert_eq!(receiver.hits().len(), 2);
}

#[tokio::test]
async fn a_closed_connection_is_a_failed_attempt_and_retried() {
    let (url, accepted) = spawn_closing_backend().await;
    assert_failure_is_retried(&url, None, "connection").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_failed_attempt_and_retried() {
    assert_failure_is_retried(&refused_url().await, None, "connect").await;
}

#[tokio::test]
async fn a_tls_failure_is_a_failed_attempt_and_retried() {
    // https to a plain-HTTP server: the handshake fails.
    let (_receiver, base) = Receiver::spawn().await;
    let url = base.replace("http://", "https://") + "/status/200";
    assert_failure_is_retried(&url, None, "tls").await;
}

#[tokio::test]
async fn only_the_first_kib_of_an_answer_is_kept() {
    let (_receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/big"), |_| {}).await;
    h.pay("1", "1").await;
    assert_eq!(h.run_due().await, 1);
    let body = &history(&h.app, 1)[0].response_body;
    // "é" is two bytes: 512 of them fill the KiB exactly.
    assert_eq!(body, &"é".repeat(512));
}

#[tokio::test]
async fn three_failures_then_200_make_one_delivery_and_four_attempts() {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/flaky/3"), |_| {}).await;
    h.pay("3001", "5").await;
    // Zero jitter: half of 5, 10, 20 s.
    for wait_ms in [2_500, 5_000, 10_000] {
        assert_eq!(h.run_due().await, 1);
        let r = row(&h.app, 1);
        assert_eq!(r.status, 0);
        assert_eq!(r.due_ms, Some(h.now_ms() + wait_ms));
        h.clock.advance(Duration::from_millis(wait_ms as u64));
    }
    assert_eq!(h.run_due().await, 1);
    h.clock.advance(Duration::from_secs(86_400));
    assert_eq!(h.run_due().await, 0);

    let statuses: Vec<_> = history(&h.app, 1).iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(500), Some(200)]);
    let r = row(&h.app, 1);
    assert_eq!(
        (r.status, r.attempts, r.due_ms, r.last_error),
        (1, 4, None, None)
    );
    assert_eq!(receiver.hits().len(), 4);
    assert_eq!(
        h.app
            .count("SELECT COUNT(*) FROM qiwi_webhook_attempt WHERE error IS NULL"),
        1
    );
}

#[tokio::test]
async fn retry_after_is_honoured_within_the_cap() {
    let (_receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/retry-after/120"), |_| {}).await;
    h.pay("1", "1").await;
    assert_eq!(h.run_due().await, 1);
    assert_eq!(row(&h.app, 1).due_ms, Some(h.now_ms() + 120_000));

    let h = harness(&format!("{base}/retry-after/86400"), |c| {
        c.webhook.backoff.max = Duration::from_secs(600);
    })
    .await;
    h.pay("1", "1").await;
    assert_eq!(h.run_due().await, 1);
    assert_eq!(row(&h.app, 1).due_ms, Some(h.now_ms() + 600_000));
}

#[tokio::test]
async fn max_attempts_stops_retrying_and_resend_revives_it() {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/status/500"), |c| {
        c.webhook.max_attempts = Some(3);
    })
    .await;
    h.pay("1", "1").await;
    for _ in 0..3 {
        assert_eq!(h.run_due().await, 1);
        h.clock.advance(Duration::from_secs(3_600));
    }
    let r = row(&h.app, 1);
    assert_eq!((r.status, r.attempts, r.due_ms), (0, 3, None));
    assert_eq!(
        r.last_error.as_deref(),
        Some("gave up after 3 attempts; last: status: 500 Internal Server Error")
    );
    h.clock.advance(Duration::from_secs(30 * 86_400));
    assert_eq!(h.run_due().await, 0);
    assert_eq!(receiver.hits().len(), 3);

    // A manual resend makes it due again: one more attempt, then given up again.
    assert_eq!(h.app.state.outbox().resend(None).await.unwrap(), 1);
    assert_eq!(h.run_due().await, 1);
    let r = row(&h.app, 1);
    assert_eq!((r.status, r.attempts, r.due_ms), (0, 4, None));
    assert_eq!(receiver.hits().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// The request.

#[tokio::test]
async fn payload_and_headers_are_exactly_as_specified() {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/status/200"), |_| {}).await;
    h.pay("563456456745", "10.45").await;
    h.pay("77", "45").await;
    assert_eq!(h.run_due().await, 2);

    let mut hits = receiver.hits();
    hits.sort_by_key(|hit| hit.body.len());
    let (whole, cents) = (&hits[0], &hits[1]);
    let expected = |id: i64, code: &str, sum: &str, amount: &str| {
        format!(
            r#"{{"id":"{id}","account":"79001234567","code":"{code}","sum":{sum},"created_at":"{}","amount":"{amount}","txn_date":"20240101120000","extra":{{}}}}"#,
            row(&h.app, id).created_at
        )
    };
    assert_eq!(whole.body, expected(2, "77", "45.0", "45.00"));
    assert_eq!(cents.body, expected(1, "563456456745", "10.45", "10.45"));
    // created_at is UTC YYYY-MM-DD HH:MM:SS.
    let created = row(&h.app, 1).created_at;
    chrono::NaiveDateTime::parse_from_str(&created, "%Y-%m-%d %H:%M:%S").unwrap();

    let hit = cents;
    assert_eq!(hit.path, "/status/200");
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(
        hit.headers["user-agent"],
        format!("qiwi-gateway/{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    assert_eq!(hit.headers["webhook-id"], "qiwi_563456456745");
    assert_eq!(whole.headers["webhook-id"], "qiwi_77");
    // Unsigned without a secret.
    assert!(hit.headers.get("webhook-signature").is_none());
    assert!(hit.headers.get("webhook-timestamp").is_none());
}

#[tokio::test]
async fn the_webhook_id_is_stable_across_retries_and_resends() {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/flaky/1"), |_| {}).await;
    h.pay("4242", "1").await;
    assert_eq!(h.run_due().await, 1);
    h.clock.advance(Duration::from_secs(60));
    assert_eq!(h.run_due().await, 1);
    h.app.state.outbox().resend(Some(1)).await.unwrap();
    assert_eq!(h.run_due().await, 1);
    let ids: Vec<_> = receiver
        .hits()
        .iter()
        .map(|hit| hit.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["qiwi_4242"; 3]);
}

/// An independent Standard Webhooks verifier, as a merchant would write it.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => STANDARD.decode(b64).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
    let h = |name: &str| headers[name].to_str().unwrap().to_owned();
    let signed = [
        h("webhook-id").as_bytes(),
        b".",
        h("webhook-timestamp").as_bytes(),
        b".",
        body,
    ]
    .concat();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(&signed);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    h("webhook-signature").split(' ').any(|s| s == expected)
}

#[tokio::test]
async fn the_signature_verifies_with_an_independent_verifier() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/status/200"), |c| {
        c.webhook.secret = Some(Secret(secret.into()));
    })
    .await;
    h.pay("1001", "10.45").await;
    assert_eq!(h.run_due().await, 1);

    let hit = &receiver.hits()[0];
    assert_eq!(
        hit.headers["webhook-timestamp"],
        (h.now_ms() / 1000).to_string().as_str()
    );
    assert!(
        hit.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert!(verify(secret, &hit.headers, &hit.body));
    // The verifier is not trivially happy.
    let mut tampered = hit.body.to_vec();
    let last_digit = tampered.len() - 3;
    tampered[last_digit] ^= 1;
    assert!(!verify(secret, &hit.headers, &tampered));
    assert!(!verify(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &hit.headers,
        &hit.body
    ));
}

#[tokio::test]
async fn a_plain_secret_signs_with_its_bytes() {
    let secret = "not-base64-just-a-passphrase";
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/status/200"), |c| {
        c.webhook.secret = Some(Secret(secret.into()));
    })
    .await;
    h.pay("1", "1").await;
    assert_eq!(h.run_due().await, 1);
    let hit = &receiver.hits()[0];
    assert!(verify(secret, &hit.headers, &hit.body));
}

// ---------------------------------------------------------------------------------------------
// Resend, concurrency, backlog.

#[tokio::test]
async fn resend_sends_a_delivered_payment_once_more() {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/status/200"), |_| {}).await;
    h.pay("1", "1").await;
    assert_eq!(h.run_due().await, 1);
    let first = row(&h.app, 1);
    assert_eq!(first.status, 1);

    h.clock.advance(Duration::from_secs(3_600));
    assert_eq!(h.app.state.outbox().resend(Some(1)).await.unwrap(), 1);
    assert_eq!(h.run_due().await, 1);
    assert_eq!(h.run_due().await, 0);

    assert_eq!(receiver.hits().len(), 2);
    assert_eq!(receiver.hits()[0].body, receiver.hits()[1].body);
    assert_eq!(history(&h.app, 1).len(), 2);
    let r = row(&h.app, 1);
    assert_eq!((r.status, r.attempts, r.due_ms), (1, 2, None));
    // The first delivery's time stays.
    assert_eq!(r.delivered_at, first.delivered_at);
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/slow/150"), |c| c.webhook.concurrency = 2).await;
    for i in 0..6 {
        h.pay(&format!("{}", 100 + i), "1").await;
    }
    assert_eq!(h.run_due().await, 6);
    assert_eq!(receiver.hits().len(), 6);
    assert_eq!(receiver.max_concurrent(), 2);
    assert_eq!(
        h.app
            .count("SELECT COUNT(*) FROM qiwi_transaction WHERE status = 1"),
        6
    );
}

#[tokio::test]
async fn no_payment_is_attempted_twice_at_once() {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/slow/100"), |c| c.webhook.concurrency = 8).await;
    for i in 0..5 {
        h.pay(&format!("{}", 100 + i), "1").await;
    }
    let other = h.worker.clone();
    let (a, b, c) = tokio::join!(h.worker.run_due(), other.run_due(), h.worker.run_due());
    assert_eq!(a.unwrap() + b.unwrap() + c.unwrap(), 5);
    assert_eq!(receiver.hits().len(), 5);
    assert_eq!(h.app.count("SELECT COUNT(*) FROM qiwi_webhook_attempt"), 5);
}

#[tokio::test]
async fn a_backlog_longer_than_a_page_is_delivered_in_one_step() {
    let (receiver, base) = Receiver::spawn().await;
    let h = harness(&format!("{base}/status/200"), |c| {
        c.webhook.concurrency = 16
    })
    .await;
    let pays = (0..600).map(|i| h.app.pay_owned_txn(format!("{}", 5_000 + i)));
    for chunk in futures::future::join_all(pays).await {
        assert_eq!(chunk.result(), 0);
    }
    assert_eq!(h.run_due().await, 600);
    assert_eq!(receiver.hits().len(), 600);
    assert_eq!(
        h.app
            .count("SELECT COUNT(*) FROM qiwi_transaction WHERE status = 1"),
        600
    );
    assert_eq!(
        h.app.count("SELECT COUNT(*) FROM qiwi_webhook_attempt"),
        600
    );
}

impl TestApp {
    async fn pay_owned_txn(&self, txn_id: String) -> XmlAnswer {
        self.pay(&txn_id, "acc", "1.00").await
    }
}

// ---------------------------------------------------------------------------------------------
// The background worker the gateway starts.

/// Starts a gateway whose own worker delivers to `url` (1 s timeout), in `dir` if given.
async fn spawn_with_url(
    dir: Option<tempfile::TempDir>,
    url: &str,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let cfg = webhook_config(&test_config(&dir), url, tweak);
    start_in(dir, cfg).await
}

#[tokio::test]
async fn a_stored_payment_is_delivered_at_once() {
    // Payment 1 is stored while no URL is set; the restarted gateway's worker delivers it on
    // its first look at the outbox and then sleeps: nothing fails (no retry timer) and its idle
    // rescan is an hour, longer than this test. So payment 2, stored after payment 1 was
    // delivered, reaches the receiver only because storing it woke the worker.
    let app = spawn_app().await;
    assert_eq!(app.pay("1", "acc", "1").await.result(), 0);
    let dir = app.stop().await;
    let (receiver, base) = Receiver::spawn().await;
    let app = spawn_with_url(Some(dir), &format!("{base}/status/200"), |c| {
        c.webhook.idle_rescan = Duration::from_secs(3_600);
    })
    .await;
    eventually(Duration::from_secs(30), "the backlog delivered", || {
        app.count("SELECT status FROM qiwi_transaction WHERE id = 1") == 1
    })
    .await;
    assert_eq!(app.pay("2", "acc", "1").await.result(), 0);
    eventually(Duration::from_secs(30), "the new payment delivered", || {
        app.count("SELECT status FROM qiwi_transaction WHERE id = 2") == 1
    })
    .await;
    assert_eq!(receiver.hits().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn the_background_worker_retries_on_its_timer() {
    let (receiver, base) = Receiver::spawn().await;
    let app = spawn_with_url(None, &format!("{base}/flaky/1"), |c| {
        c.webhook.backoff.initial = Duration::from_secs(1);
    })
    .await;
    assert_eq!(app.pay("1", "acc", "1").await.result(), 0);
    // The retry is due 1 s after the failure; nothing but the timer wakes the worker.
    eventually(Duration::from_secs(5), "delivered on retry", || {
        app.count("SELECT status FROM qiwi_transaction WHERE id = 1") == 1
    })
    .await;
    assert_eq!(receiver.hits().len(), 2);
    assert_eq!(history(&app, 1).len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn without_a_url_nothing_is_attempted_and_a_restart_with_one_delivers_the_backlog() {
    let app = spawn_app().await;
    for txn in ["1", "2", "3"] {
        assert_eq!(app.pay(txn, "acc", "1").await.result(), 0);
    }
    app.state.outbox().resend(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_webhook_attempt"), 0);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM qiwi_transaction
             WHERE status = 0 AND attempts = 0 AND delivery_due_ms IS NOT NULL"
        ),
        3
    );

    let dir = app.stop().await;
    let (receiver, base) = Receiver::spawn().await;
    let app = spawn_with_url(Some(dir), &format!("{base}/status/200"), |_| {}).await;
    eventually(Duration::from_secs(5), "backlog delivered", || {
        app.count("SELECT COUNT(*) FROM qiwi_transaction WHERE status = 1") == 3
    })
    .await;
    let mut ids: Vec<_> = receiver
        .hits()
        .iter()
        .map(|h| h.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["qiwi_1", "qiwi_2", "qiwi_3"]);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_waits_for_the_attempt_in_flight_and_starts_no_new_one() {
    let (receiver, base) = Receiver::spawn().await;
    let app = spawn_with_url(None, &format!("{base}/slow/1500"), |c| {
        c.webhook.concurrency = 1;
        c.webhook.timeout = Duration::from_secs(5);
    })
    .await;
    assert_eq!(app.pay("1", "acc", "1").await.result(), 0);
    eventually(Duration::from_secs(3), "first attempt under way", || {
        !receiver.hits().is_empty()
    })
    .await;
    // The only slot is taken: this one waits, and must not be started by a stopping worker.
    assert_eq!(app.pay("2", "acc", "1").await.result(), 0);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let dir = app.stop().await;
    // stop() returned: the attempt in flight was completed and recorded first.
    let conn = rusqlite::Connection::open(dir.path().join("qiwi.db")).unwrap();
    let state = |id: i64| -> (i64, i64, i64) {
        conn.query_row(
            "SELECT t.status, t.attempts,
                    (SELECT COUNT(*) FROM qiwi_webhook_attempt a WHERE a.transaction_id = t.id)
             FROM qiwi_transaction t WHERE t.id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    assert_eq!(state(1), (1, 1, 1));
    assert_eq!(state(2), (0, 0, 0));
    assert_eq!(receiver.hits().len(), 1);
    drop(conn);

    // The next start delivers what was left.
    let app = spawn_with_url(Some(dir), &format!("{base}/status/200"), |_| {}).await;
    eventually(Duration::from_secs(5), "left-over delivered", || {
        app.count("SELECT COUNT(*) FROM qiwi_transaction WHERE status = 1") == 2
    })
    .await;
    assert_eq!(receiver.paths(), ["/slow/1500", "/status/200"]);
    app.stop().await;
}

/// The real binary, killed (SIGKILL) when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `qiwi-gateway` binary on the database in `dir`, configured by environment only.
fn start_binary(dir: &std::path::Path, webhook_url: &str) -> Process {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_qiwi-gateway"))
        .env_clear()
        .current_dir(dir)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("DATABASE_PATH", dir.join("qiwi.db"))
        .env("QIWI_WEBHOOK_URL", webhook_url)
        .env("WEBHOOK_TIMEOUT_SECS", "30")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Process(child)
}

#[tokio::test]
async fn an_attempt_in_flight_at_a_crash_is_sent_again_after_restart() {
    let app = spawn_app().await;
    assert_eq!(app.pay("1", "acc", "1").await.result(), 0);
    let dir = app.stop().await;
    let count = |sql: &str| -> i64 {
        let conn = rusqlite::Connection::open_with_flags(
            dir.path().join("qiwi.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    };

    let (receiver, base) = Receiver::spawn().await;
    let gateway = start_binary(dir.path(), &format!("{base}/hang"));
    eventually(Duration::from_secs(10), "attempt under way", || {
        !receiver.hits().is_empty()
    })
    .await;
    drop(gateway); // kill -9 while the backend has not answered
    assert_eq!(count("SELECT COUNT(*) FROM qiwi_webhook_attempt"), 0);
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM qiwi_transaction WHERE status = 0 AND delivery_due_ms IS NOT NULL"
        ),
        1
    );

    let _gateway = start_binary(dir.path(), &format!("{base}/status/200"));
    eventually(Duration::from_secs(10), "sent again and delivered", || {
        count("SELECT COUNT(*) FROM qiwi_transaction WHERE status = 1") == 1
    })
    .await;
    assert_eq!(receiver.paths(), ["/hang", "/status/200"]);
    assert_eq!(
        count("SELECT COUNT(*) FROM qiwi_webhook_attempt WHERE http_status = 200"),
        1
    );
}

#[tokio::test]
async fn a_204_is_retried_by_default_and_delivered_when_listed() {
    let (receiver, base) = Receiver::spawn().await;
    let strict = harness(&format!("{base}/status/204"), |_| {}).await;
    strict.pay("1", "10").await;
    assert_eq!(strict.run_due().await, 1);
    assert_eq!(row(&strict.app, 1).status, 0);
    let lenient = harness(&format!("{base}/status/204"), |c| {
        c.webhook.success_statuses = vec![200, 201, 204];
    })
    .await;
    lenient
        .app
        .query(
            "command=pay&txn_id=0042&account=a&sum=10.05&txn_date=20240101120000&ccy=643&prv_id=7",
        )
        .await;
    assert_eq!(lenient.run_due().await, 1);
    assert_eq!(row(&lenient.app, 1).status, 1);
    let last = receiver.hits().pop().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(v["code"], "42");
    assert_eq!(v["amount"], "10.05");
    assert_eq!(v["sum"], 10.05);
    assert_eq!(v["txn_date"], "20240101120000");
    assert_eq!(v["extra"], serde_json::json!({"ccy": "643", "prv_id": "7"}));
}
