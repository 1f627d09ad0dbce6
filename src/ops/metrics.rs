//! Prometheus metrics, one registry per gateway (so tests running several gateways in one
//! process each see their own numbers).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::db::maintenance::Backlog;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `check`, `pay`, `other` (unknown command) or `none` (no protocol answer).
    command: &'static str,
    /// The protocol result code, or `http_<status>` when the request got no protocol answer.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    /// `file` or `acme`.
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    /// The HTTP status a peer answered (100-599: bounded), or `none` when it gave none.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabels {
    /// `url` or `body`: the request-log field that was cut.
    field: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    /// `per_ip` or `total`.
    limit: &'static str,
}

/// Every metric the gateway exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    payments: Counter,
    payments_amount: Counter,
    webhook_attempts: Family<OutcomeLabels, Counter>,
    check_backend: Family<StatusLabels, Counter>,
    db_write: Histogram,
    backlog: Gauge,
    backlog_oldest_age: Gauge<f64, AtomicU64>,
    tls_expiry: Family<SourceLabels, Gauge>,
    connection_limit_hits: Family<LimitLabels, Counter>,
    connections_open: Gauge,
    log_cut: Family<FieldLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "qiwi_requests",
            "Requests to /payment by command and result code (http_<status> when not a protocol answer)",
            requests.clone(),
        );
        let payments = Counter::default();
        registry.register(
            "qiwi_payments",
            "New payments stored (repeats of a known txn_id not counted)",
            payments.clone(),
        );
        let payments_amount = Counter::default();
        registry.register(
            "qiwi_payments_amount_kopecks",
            "Sum of new payments stored, in minor units (kopecks)",
            payments_amount.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "qiwi_webhook_attempts",
            "Webhook delivery attempts by outcome",
            webhook_attempts.clone(),
        );
        let check_backend = Family::<StatusLabels, Counter>::default();
        registry.register(
            "qiwi_check_backend_answers",
            "Calls to the check backend (QIWI_CHECK_URL) by the HTTP status it answered (none: \
             timeout, refused or broken connection)",
            check_backend.clone(),
        );
        let db_write = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "qiwi_db_write_duration_seconds",
            "Time from queueing a database write to its durable commit",
            db_write.clone(),
        );
        let backlog = Gauge::default();
        registry.register(
            "qiwi_webhook_backlog",
            "Payments whose webhook delivery is still due",
            backlog.clone(),
        );
        let backlog_oldest_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "qiwi_webhook_backlog_oldest_age_seconds",
            "Age of the oldest payment whose webhook delivery is still due (0 when none)",
            backlog_oldest_age.clone(),
        );
        let tls_expiry = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "qiwi_tls_certificate_expiry_seconds",
            "Seconds until the served HTTPS certificate expires (negative once expired), by \
             source (file or acme); absent when the gateway serves plain HTTP",
            tls_expiry.clone(),
        );
        let connection_limit_hits = Family::<LimitLabels, Counter>::default();
        registry.register(
            "qiwi_connection_limit_hits",
            "Connection limits hit: per_ip, a connection closed at once because its address \
             (IPv6: its /64) held http_max_connections_per_ip; total, the server stopped \
             accepting because http_max_connections were open (later connections wait in the \
             kernel's queue)",
            connection_limit_hits.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "qiwi_connections_open",
            "HTTP connections open now",
            connections_open.clone(),
        );
        let log_cut = Family::<FieldLabels, Counter>::default();
        registry.register(
            "qiwi_http_log_cut",
            "Request-log fields (url, body) over 4 KiB stored as their first 1 KiB and a marker \
             with the received length (the request was answered 300 or refused)",
            log_cut.clone(),
        );
        Metrics {
            log_cut,
            registry,
            connection_limit_hits,
            connections_open,
            tls_expiry,
            requests,
            payments,
            payments_amount,
            webhook_attempts,
            check_backend,
            db_write,
            backlog,
            backlog_oldest_age,
        }
    }

    /// Counts one `/payment` request. `command` is the request's `command` parameter (when it
    /// is `check` or `pay`), `result` the protocol result code it was answered, or without one
    /// the HTTP status.
    pub fn request(&self, command: Option<&'static str>, result: Option<u16>, status: u16) {
        let labels = RequestLabels {
            command: command.unwrap_or(if result.is_some() { "other" } else { "none" }),
            result: result.map_or_else(|| format!("http_{status}"), |r| r.to_string()),
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts a newly stored payment of `sum_minor` kopecks.
    pub fn payment_stored(&self, sum_minor: i64) {
        self.payments.inc();
        self.payments_amount
            .inc_by(u64::try_from(sum_minor).unwrap_or(0));
    }

    /// Counts one webhook delivery attempt. `outcome` is a short fixed word chosen by the
    /// caller (`delivered`, `rejected`, `error`, ...): a label, so never free text.
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.webhook_attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one call to the check backend: `status` is the HTTP status it answered, `None`
    /// when it gave none (timeout, refused or broken connection).
    pub fn check_backend_answer(&self, status: Option<u16>) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.check_backend
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// Counts one request-log field (`url` or `body`) stored cut to its head
    /// (`db::http_log::stored_field`).
    pub fn log_cut(&self, field: &'static str) {
        self.log_cut.get_or_create(&FieldLabels { field }).inc();
    }

    /// Records how long a database write took to commit.
    pub fn db_write(&self, took: Duration) {
        self.db_write.observe(took.as_secs_f64());
    }

    /// Sets the backlog gauges from a fresh reading.
    pub fn set_backlog(&self, b: &Backlog, now: chrono::DateTime<chrono::Utc>) {
        self.backlog
            .set(i64::try_from(b.pending).unwrap_or(i64::MAX));
        let age = b
            .oldest
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        self.backlog_oldest_age.set(age);
    }

    /// Sets the seconds left on the served HTTPS certificate (`source`: `file` or `acme`).
    pub fn set_tls_expiry(&self, source: &'static str, seconds_left: i64) {
        self.tls_expiry
            .get_or_create(&SourceLabels { source })
            .set(seconds_left);
    }

    /// Counts one hit of a connection limit: `limit` is `per_ip` (a connection closed at the
    /// per-address cap) or `total` (all connection slots taken).
    pub fn connection_limit_hit(&self, limit: &'static str) {
        self.connection_limit_hits
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// Counts a connection accepted and served.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// Counts a served connection closed.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// The metrics in the OpenMetrics text format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.request(Some("pay"), Some(0), 200);
        m.request(Some("pay"), Some(0), 200);
        m.request(None, None, 403);
        m.request(None, Some(300), 200);
        m.payment_stored(1045);
        m.webhook_attempt("delivered");
        let text = m.render();
        assert!(
            text.contains(r#"qiwi_requests_total{command="pay",result="0"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"qiwi_requests_total{command="none",result="http_403"} 1"#));
        assert!(text.contains(r#"qiwi_requests_total{command="other",result="300"} 1"#));
        assert!(text.contains("qiwi_payments_total 1\n"));
        assert!(text.contains("qiwi_payments_amount_kopecks_total 1045\n"));
        assert!(text.contains(r#"qiwi_webhook_attempts_total{outcome="delivered"} 1"#));
        assert!(text.ends_with("# EOF\n"));
    }
}
