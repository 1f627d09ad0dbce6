//! The outbox worker: finds due deliveries, attempts them with bounded concurrency and records
//! every outcome through the single writer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use url::Url;

use super::WebhookError;
use super::backoff::{Backoff, parse_retry_after};
use super::clock::{Clock, Jitter, SystemClock, random_jitter};
use super::delivery::{Deliverer, Sent};
use super::signing::Signer;
use crate::db::outbox::{self, Cursor, Due, Verdict};
use crate::db::{self, Db, DbError};
use crate::ops::Metrics;
use crate::secret::Secret;

/// Due rows read per query.
const PAGE: usize = 256;
/// Pause after the database could not be read.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Shutdown waits this much longer than one attempt's timeout for the attempts in flight.
const DRAIN_MARGIN: Duration = Duration::from_secs(5);
/// [`Settings::idle_rescan`] in production.
pub const IDLE_RESCAN: Duration = Duration::from_secs(10);
/// Tries to record an attempt's outcome before giving up (the delivery then stays due and is
/// sent again: at least once).
const RECORD_TRIES: u32 = 8;

/// The webhook's section of the configuration (`QIWI_WEBHOOK_URL`, `WEBHOOK_SECRET`,
/// `webhook_*`), built from the keys by the configuration; this module does not read them.
/// The worker runs only with a URL; the rest also stands without one (the dashboard judges
/// stored attempts by `success_statuses`). Its `Debug` hides the URL's credentials and the
/// secret.
#[derive(Clone)]
pub struct Settings {
    /// Where payments are POSTed (`QIWI_WEBHOOK_URL`); `None`: payments are stored, not sent.
    pub url: Option<Url>,
    /// The signing secret (`WEBHOOK_SECRET`).
    pub secret: Option<Secret>,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// The retry schedule.
    pub backoff: Backoff,
    /// Attempts before a delivery is given up; `None` retries forever.
    pub max_attempts: Option<u32>,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Longest sleep between two looks at the outbox when nothing wakes the worker earlier
    /// ([`IDLE_RESCAN`]; not a configuration key: tests lengthen it). It picks up what no
    /// notification announces: a resend made by another process (the CLI), rows skipped while
    /// the clock jumped back.
    pub idle_rescan: Duration,
    /// Statuses that count as delivered (`webhook_success_statuses`; 200 and 201 by default).
    pub success_statuses: Vec<u16>,
}

impl std::fmt::Debug for Settings {
    // By hand because `Url`'s own `Debug` prints user info and query values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url.as_ref().map(crate::ops::redact::url))
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("concurrency", &self.concurrency)
            .field("idle_rescan", &self.idle_rescan)
            .field("success_statuses", &self.success_statuses)
            .finish()
    }
}

/// The retry policy: what an attempt's outcome makes of its delivery.
#[derive(Debug, Clone, Copy)]
struct Policy {
    backoff: Backoff,
    max_attempts: Option<u32>,
}

impl Policy {
    /// Judges an attempt of `due` that ended at `at`. `jitter` is uniform in `[0, 1)`.
    fn judge(&self, due: &Due, sent: &Sent, at: DateTime<Utc>, jitter: f64) -> Verdict {
        let Some(failure) = &sent.failure else {
            return Verdict::Delivered;
        };
        // Every attempt counts, resends included: the history and `attempts` agree.
        let attempts = u32::try_from(due.attempts.saturating_add(1)).unwrap_or(u32::MAX);
        if self.max_attempts.is_some_and(|max| attempts >= max) {
            return Verdict::Failed {
                next_due_ms: None,
                last_error: format!("gave up after {attempts} attempts; last: {failure}"),
            };
        }
        let computed = self.backoff.delay(attempts, jitter);
        let asked = sent
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, at.timestamp()));
        let delay = self.backoff.with_retry_after(computed, asked);
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Verdict::Failed {
            next_due_ms: Some(at.timestamp_millis().saturating_add(delay_ms)),
            last_error: failure.to_string(),
        }
    }
}

/// Which rows this process is attempting, so none is attempted twice at once. In memory only:
/// after a crash nothing is lost, because a row stays due until its outcome is committed.
#[derive(Debug, Default)]
struct Claims {
    /// Rows being attempted or recorded.
    running: HashSet<i64>,
    /// Rows whose outcome was committed since the current fetch began. That fetch may have
    /// read them before the commit (still due), so it must not take them either.
    finished: HashSet<i64>,
}

impl Claims {
    fn begin_fetch(&mut self) {
        self.finished.clear();
    }

    /// Keeps the rows of `page` nobody is attempting, and marks them taken.
    fn claim(&mut self, page: Vec<Due>) -> Vec<Due> {
        page.into_iter()
            .filter(|d| !self.finished.contains(&d.id) && self.running.insert(d.id))
            .collect()
    }

    /// The row's outcome is committed (or given up on).
    fn finish(&mut self, id: i64) {
        self.running.remove(&id);
        self.finished.insert(id);
    }

    /// The row was claimed but never attempted.
    fn release(&mut self, id: i64) {
        self.running.remove(&id);
    }
}

/// The webhook outbox worker; cheap to clone (clones share everything).
///
/// [`Worker::run`] is the background loop; [`Worker::run_due`] is its single step, which tests
/// call with a [`super::clock::ManualClock`] and fixed jitter.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    deliverer: Deliverer,
    policy: Policy,
    drain_timeout: Duration,
    idle_rescan: Duration,
    slots: Arc<Semaphore>,
    clock: Arc<dyn Clock>,
    jitter: Jitter,
    claims: Mutex<Claims>,
    /// Serialises fetch-and-claim, which [`Claims::finished`] relies on.
    fetching: tokio::sync::Mutex<()>,
    /// Every attempt in flight, for shutdown.
    tasks: TaskTracker,
    /// Woken when a failed attempt scheduled its retry: the loop's timer may need to be earlier.
    rescheduled: Notify,
    /// Where attempts are counted, when set by [`Worker::with_metrics`].
    metrics: Option<Arc<Metrics>>,
}

impl Worker {
    /// A worker for `db` with `settings`, reading time from `clock` and jitter from `jitter`.
    ///
    /// Errors: `settings` has no URL or an unusable secret, or the HTTP client cannot be built.
    pub fn new(
        db: Db,
        settings: Settings,
        clock: Arc<dyn Clock>,
        jitter: Jitter,
    ) -> Result<Worker, WebhookError> {
        let signer = settings
            .secret
            .as_ref()
            .map(|s| Signer::new(&s.0))
            .transpose()?;
        let url = settings.url.ok_or(WebhookError::NoUrl)?;
        let deliverer = Deliverer::new(url, signer, settings.timeout)
            .map(|d| d.with_success_statuses(settings.success_statuses))
            .map_err(|e| WebhookError::Client(e.without_url()))?;
        Ok(Worker {
            inner: Arc::new(Inner {
                db,
                deliverer,
                policy: Policy {
                    backoff: settings.backoff,
                    max_attempts: settings.max_attempts,
                },
                drain_timeout: settings.timeout + DRAIN_MARGIN,
                idle_rescan: settings.idle_rescan,
                slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
                clock,
                jitter,
                claims: Mutex::new(Claims::default()),
                fetching: tokio::sync::Mutex::new(()),
                tasks: TaskTracker::new(),
                rescheduled: Notify::new(),
                metrics: None,
            }),
        })
    }

    /// The production worker for `settings` (system clock, random jitter).
    ///
    /// Errors: as [`Worker::new`].
    pub fn production(db: Db, settings: Settings) -> Result<Worker, WebhookError> {
        Worker::new(db, settings, Arc::new(SystemClock), random_jitter())
    }

    /// Counts every attempt in `metrics` (`qiwi_webhook_attempts_total{outcome}`). Call before
    /// the worker runs: it has no effect on a worker already shared.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Worker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.metrics = Some(metrics);
        }
        self
    }

    /// Attempts every delivery due at the clock's current time, waits until each outcome is
    /// recorded, and returns how many attempts were made. A failed attempt is due again only
    /// later (at least a second), so it is not attempted twice by one call.
    pub async fn run_due(&self) -> Result<usize, DbError> {
        let round = TaskTracker::new();
        let now = self.inner.clock.now().timestamp_millis();
        let result = self
            .dispatch(Some(now), &CancellationToken::new(), Some(&round))
            .await;
        round.close();
        round.wait().await;
        result
    }

    /// The background loop: attempts what is due, then sleeps until the next due time, a new
    /// payment or resend (`wake`), or a rescheduled retry. When `cancel` fires it starts no new
    /// attempt and waits, at most the attempt timeout plus a margin, for those in flight to be
    /// recorded.
    pub async fn run(self, wake: Arc<Notify>, cancel: CancellationToken) {
        let inner = &self.inner;
        loop {
            if let Err(e) = self.dispatch(None, &cancel, None).await {
                tracing::error!(error = %e, "cannot read the webhook outbox");
            }
            if cancel.is_cancelled() {
                break;
            }
            let now = inner.clock.now().timestamp_millis();
            let wait = match inner.db.read(move |c| outbox::next_due_after(c, now)).await {
                Ok(Some(at)) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
                    .min(inner.idle_rescan),
                Ok(None) => inner.idle_rescan,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the webhook outbox");
                    ERROR_PAUSE
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wake.notified() => {}
                () = inner.rescheduled.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.drain().await;
    }

    /// Waits (bounded) for the attempts in flight.
    async fn drain(&self) {
        let tasks = &self.inner.tasks;
        tasks.close();
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, "waiting for webhook attempts in flight");
        }
        match tokio::time::timeout(self.inner.drain_timeout, tasks.wait()).await {
            Ok(()) => tracing::info!("webhook worker stopped"),
            Err(_) => tracing::warn!(
                in_flight = tasks.len(),
                "webhook attempts still in flight at shutdown are abandoned: they stay due \
                 and are sent again at the next start"
            ),
        }
    }

    /// Pages through the deliveries due at `fixed_now` (or at the clock's time, read again for
    /// each page, so new payments join a long backlog in order) and starts an attempt for each
    /// row nobody is attempting, as slots free up. Returns how many attempts it started. The
    /// attempts are tracked by `round` too, when given.
    async fn dispatch(
        &self,
        fixed_now: Option<i64>,
        cancel: &CancellationToken,
        round: Option<&TaskTracker>,
    ) -> Result<usize, DbError> {
        let inner = &self.inner;
        let mut cursor = Cursor::START;
        let mut started = 0;
        loop {
            let now = fixed_now.unwrap_or_else(|| inner.clock.now().timestamp_millis());
            let (claimed, next_page) = self.claim_page(now, cursor).await?;
            let mut claimed = claimed.into_iter();
            while let Some(due) = claimed.next() {
                let permit = tokio::select! {
                    biased;
                    () = cancel.cancelled() => None,
                    permit = inner.slots.clone().acquire_owned() => permit.ok(),
                };
                let Some(permit) = permit else {
                    let mut claims = inner.claims();
                    claims.release(due.id);
                    claimed.for_each(|d| claims.release(d.id));
                    return Ok(started);
                };
                let span = tracing::info_span!("webhook", txn_id = %due.code, id = due.id);
                let task = inner
                    .tasks
                    .track_future(attempt(inner.clone(), due, permit).instrument(span));
                match round {
                    Some(round) => tokio::spawn(round.track_future(task)),
                    None => tokio::spawn(task),
                };
                started += 1;
            }
            match next_page {
                Some(after) => cursor = after,
                None => return Ok(started),
            }
        }
    }

    /// Reads one page of due rows after `after` and claims those nobody is attempting.
    /// Returns them, and where the next page starts if there may be one.
    async fn claim_page(
        &self,
        now: i64,
        after: Cursor,
    ) -> Result<(Vec<Due>, Option<Cursor>), DbError> {
        let inner = &self.inner;
        let _serial = inner.fetching.lock().await;
        // Before the read: an outcome committed after this point is either seen by the read
        // or lands in `finished`.
        inner.claims().begin_fetch();
        let page = inner
            .db
            .read(move |c| outbox::due_page(c, now, after, PAGE))
            .await?;
        let next = (page.len() == PAGE)
            .then(|| page.last().map(Due::cursor))
            .flatten();
        Ok((inner.claims().claim(page), next))
    }
}

impl Inner {
    fn claims(&self) -> MutexGuard<'_, Claims> {
        // The set stays consistent whatever panicked while holding it.
        self.claims.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an attempt, retrying while the database is unavailable.
    async fn record(&self, a: outbox::Attempt) -> bool {
        let a = Arc::new(a);
        let mut pause = Duration::from_millis(100);
        for try_no in 1..=RECORD_TRIES {
            let job = Arc::clone(&a);
            match self
                .db
                .writer()
                .write(move |c| outbox::record(c, &job))
                .await
            {
                Ok(()) => return true,
                Err(DbError::WriterGone) => break,
                Err(e) => {
                    tracing::warn!(error = %e, try_no, "cannot record a webhook attempt yet");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::error!(
            "cannot record a webhook attempt: the delivery stays due and will be sent again"
        );
        false
    }
}

/// One attempt of `due`: send, free the slot, judge, record, release the claim.
async fn attempt(inner: Arc<Inner>, due: Due, permit: OwnedSemaphorePermit) {
    let started = inner.clock.now();
    let sent = inner.deliverer.send(&due, started.timestamp()).await;
    // The slot bounds requests in flight, not commits: the next attempt need not wait for
    // this one's outcome to be durable (the claim still keeps this row from being re-sent).
    drop(permit);
    let ended = inner.clock.now();
    let verdict = inner.policy.judge(&due, &sent, ended, (inner.jitter)());
    let attempt_no = due.attempts.saturating_add(1);
    if let Some(m) = &inner.metrics {
        m.webhook_attempt(match (&verdict, sent.http_status) {
            (Verdict::Delivered, _) => "delivered",
            (Verdict::Failed { .. }, Some(_)) => "rejected",
            (Verdict::Failed { .. }, None) => "no_answer",
        });
    }
    match (&verdict, &sent.failure) {
        (Verdict::Delivered, _) => tracing::info!(
            status = sent.http_status,
            attempt = attempt_no,
            duration_ms = sent.duration.as_millis() as u64,
            "webhook delivered"
        ),
        (Verdict::Failed { next_due_ms, .. }, failure) => {
            let error = failure
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            match next_due_ms {
                Some(at) => tracing::warn!(
                    %error,
                    attempt = attempt_no,
                    retry_in_ms = at - ended.timestamp_millis(),
                    "webhook attempt failed"
                ),
                None => tracing::error!(
                    %error,
                    attempt = attempt_no,
                    "webhook delivery given up (WEBHOOK_MAX_ATTEMPTS reached)"
                ),
            }
        }
    }
    let rescheduled = matches!(
        verdict,
        Verdict::Failed {
            next_due_ms: Some(_),
            ..
        }
    );
    let record = outbox::Attempt {
        transaction_id: due.id,
        claimed_due_ms: due.due_ms,
        at: db::format_time(started),
        http_status: sent.http_status,
        error: sent.failure.as_ref().map(ToString::to_string),
        duration_ms: i64::try_from(sent.duration.as_millis()).unwrap_or(i64::MAX),
        response_body: sent.body,
        request: Some(outbox::AttemptRequest {
            url: sent.request.url,
            headers: sent.request.headers,
            body: sent.request.body,
        }),
        verdict,
    };
    inner.record(record).await;
    inner.claims().finish(due.id);
    if rescheduled {
        inner.rescheduled.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::super::delivery::Failure;
    use super::*;

    fn policy(max_attempts: Option<u32>) -> Policy {
        Policy {
            backoff: Backoff {
                initial: Duration::from_secs(5),
                max: Duration::from_secs(3600),
            },
            max_attempts,
        }
    }

    fn due(attempts: i64) -> Due {
        Due {
            id: 1,
            account: "a".into(),
            code: "1".into(),
            sum_minor: 100,
            created_at: "2024-01-01 00:00:00".into(),
            txn_date: "20240101000000".into(),
            extra: "{}".into(),
            attempts,
            due_ms: 0,
            test: false,
        }
    }

    fn sent(status: u16, retry_after: Option<&str>) -> Sent {
        Sent {
            http_status: Some(status),
            failure: (!matches!(status, 200 | 201)).then_some(Failure::Status(status)),
            retry_after: retry_after.map(str::to_owned),
            body: String::new(),
            duration: Duration::ZERO,
            request: Default::default(),
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn next_in_ms(v: Verdict) -> Option<i64> {
        match v {
            Verdict::Failed { next_due_ms, .. } => next_due_ms.map(|t| t - at().timestamp_millis()),
            Verdict::Delivered => panic!("delivered"),
        }
    }

    #[test]
    fn success_is_delivered() {
        let p = policy(Some(1));
        assert_eq!(
            p.judge(&due(5), &sent(200, None), at(), 0.0),
            Verdict::Delivered
        );
        assert_eq!(
            p.judge(&due(0), &sent(201, None), at(), 0.0),
            Verdict::Delivered
        );
    }

    #[test]
    fn failures_follow_the_backoff_with_the_attempt_count() {
        let p = policy(None);
        // Zero jitter: half the base, 5 s * 2^(n-1).
        assert_eq!(
            next_in_ms(p.judge(&due(0), &sent(500, None), at(), 0.0)),
            Some(2_500)
        );
        assert_eq!(
            next_in_ms(p.judge(&due(1), &sent(500, None), at(), 0.0)),
            Some(5_000)
        );
        assert_eq!(
            next_in_ms(p.judge(&due(100), &sent(500, None), at(), 0.0)),
            Some(1_800_000)
        );
    }

    #[test]
    fn retry_after_stretches_within_the_cap() {
        let p = policy(None);
        let v = p.judge(&due(0), &sent(503, Some("120")), at(), 0.0);
        assert_eq!(next_in_ms(v), Some(120_000));
        let v = p.judge(&due(0), &sent(429, Some("999999999")), at(), 0.0);
        assert_eq!(next_in_ms(v), Some(3_600_000));
        let v = p.judge(&due(0), &sent(503, Some("nonsense")), at(), 0.0);
        assert_eq!(next_in_ms(v), Some(2_500));
    }

    #[test]
    fn the_last_allowed_attempt_gives_up() {
        let p = policy(Some(3));
        assert_eq!(
            next_in_ms(p.judge(&due(1), &sent(500, None), at(), 0.0)),
            Some(5_000)
        );
        match p.judge(&due(2), &sent(500, None), at(), 0.0) {
            Verdict::Failed {
                next_due_ms: None,
                last_error,
            } => assert_eq!(
                last_error,
                "gave up after 3 attempts; last: status: 500 Internal Server Error"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn claims_never_hand_out_a_row_twice() {
        let mut c = Claims::default();
        c.begin_fetch();
        assert_eq!(c.claim(vec![due(0)]).len(), 1);
        // Still running: not again.
        assert!(c.claim(vec![due(0)]).is_empty());
        // Finished during this fetch: the read may predate the commit.
        c.finish(1);
        assert!(c.claim(vec![due(0)]).is_empty());
        // A fetch that began after the commit reads the new state: free to take.
        c.begin_fetch();
        assert_eq!(c.claim(vec![due(0)]).len(), 1);
        c.release(1);
        assert_eq!(c.claim(vec![due(0)]).len(), 1);
    }

    /// The section stands without a URL (the dashboard reads it), but no worker runs on it.
    #[tokio::test]
    async fn a_worker_needs_a_url() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("w.db")).unwrap();
        let settings = Settings {
            url: None,
            secret: None,
            timeout: Duration::from_secs(1),
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(2),
            },
            max_attempts: None,
            concurrency: 1,
            idle_rescan: IDLE_RESCAN,
            success_statuses: vec![200],
        };
        let without = Worker::production(db.clone(), settings.clone());
        assert!(matches!(without, Err(WebhookError::NoUrl)));
        let with = Worker::production(
            db,
            Settings {
                url: Some("http://127.0.0.1:9/hook".parse().unwrap()),
                ..settings
            },
        );
        assert!(with.is_ok());
    }
}
