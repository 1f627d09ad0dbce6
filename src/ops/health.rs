//! `/healthz` (the process answers), `/readyz` (it can take payments) and `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Settings;
use crate::db::{Db, maintenance};
use crate::ops::Metrics;
use crate::ops::certs::TlsStatus;

/// The routes of this module, on any state that holds the operations settings, the database,
/// the metrics and the TLS status (`crate::state::AppState`).
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Settings>: FromRef<S>,
    Db: FromRef<S>,
    Arc<Metrics>: FromRef<S>,
    Arc<TlsStatus>: FromRef<S>,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up and serving HTTP. Nothing else is checked: a container is restarted
/// when this fails, which a slow database would not cure.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready to take payments: the database commits a heartbeat (a bounded write that needs a
/// page as a pay does, `db::heartbeat`) within the deadline, and (when
/// `readiness_max_backlog_age_secs` is set) no undelivered webhook is older than that.
/// Answers 200 or 503 with one line per check.
pub async fn readyz(
    State(settings): State<Arc<Settings>>,
    State(db): State<Db>,
    State(metrics): State<Arc<Metrics>>,
    State(tls): State<Arc<TlsStatus>>,
) -> Response {
    let mut ready = true;
    let mut report = String::new();
    let deadline = settings.timings.readiness_deadline;
    let started = Instant::now();
    let write = db
        .writer()
        .write(|c| crate::db::heartbeat::beat(c, &crate::db::now_text()));
    match tokio::time::timeout(deadline, write).await {
        Ok(Ok(())) => {
            let took = started.elapsed();
            metrics.db_write(took);
            let _ = writeln!(report, "database: ok ({} ms)", took.as_millis());
        }
        Ok(Err(e)) => {
            ready = false;
            tracing::error!(error = %e, "readiness: the database did not take a write");
            let _ = writeln!(report, "database: a write failed");
        }
        Err(_) => {
            ready = false;
            tracing::error!(
                ?deadline,
                "readiness: the database did not commit a write in time"
            );
            let _ = writeln!(
                report,
                "database: no write committed within {} ms",
                deadline.as_millis()
            );
        }
    }
    if let Some(max) = settings.readiness_max_backlog_age {
        match db.read(maintenance::backlog).await {
            Ok(b) => {
                let now = chrono::Utc::now();
                metrics.set_backlog(&b, now);
                let age = b.oldest.map_or(0, |t| (now - t).num_seconds().max(0));
                let limit = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
                if age > limit {
                    ready = false;
                }
                let _ = writeln!(
                    report,
                    "webhook backlog: {} pending, oldest {age} s (limit {limit} s)",
                    b.pending
                );
            }
            Err(e) => {
                ready = false;
                tracing::error!(error = %e, "readiness: cannot read the webhook backlog");
                let _ = writeln!(report, "webhook backlog: cannot be read");
            }
        }
    }
    if let Some((tls_ready, line)) = tls.readiness(chrono::Utc::now()) {
        ready &= tls_ready;
        let _ = writeln!(report, "{line}");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, report).into_response()
}

/// Prometheus metrics, behind `metrics_token` as a bearer token when it is set.
pub async fn metrics(
    State(settings): State<Arc<Settings>>,
    State(db): State<Db>,
    State(metrics): State<Arc<Metrics>>,
    State(tls): State<Arc<TlsStatus>>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &settings.metrics_token
        && !crate::http::bearer_ok(&headers, token)
    {
        let mut resp = (StatusCode::UNAUTHORIZED, "bearer token required\n").into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return resp;
    }
    match db.read(maintenance::backlog).await {
        Ok(b) => metrics.set_backlog(&b, chrono::Utc::now()),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the webhook backlog"),
    }
    if let Some((source, left)) = tls.seconds_left(chrono::Utc::now()) {
        metrics.set_tls_expiry(source.as_str(), left);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::metrics::CONTENT_TYPE),
        )],
        metrics.render(),
    )
        .into_response()
}
