//! One log line per request: method, path, status, latency, and for `/payment` the `txn_id`
//! and result; `/payment` requests are also counted in the metrics here.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::ops::Metrics;

/// What the `/payment` handler tells this layer about its answer (a response extension).
#[derive(Debug, Clone, Default)]
pub struct PaymentInfo {
    /// The `command` parameter when it was `check` or `pay`.
    pub command: Option<&'static str>,
    /// The protocol result code, when the request got a protocol answer.
    pub result: Option<u16>,
    /// The request's `txn_id` as sent (bounded for the log).
    pub txn_id: Option<String>,
}

/// Paths polled by orchestrators and Prometheus: logged at debug level only, so a container
/// health check every few seconds does not bury the payments in the log.
const QUIET: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The middleware: runs the request, then logs (and for `/payment` counts) it.
pub async fn layer(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: the query carries accounts and sums, which belong in the database log.
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = resp.status().as_u16();
    if let Some(info) = resp.extensions().get::<PaymentInfo>() {
        metrics.request(info.command, info.result, status);
        // A valid txn_id is 20 digits; whatever else was sent is cut to a bounded length.
        let txn_id = info.txn_id.as_deref().map(|t| {
            let end = t.char_indices().nth(40).map_or(t.len(), |(i, _)| i);
            &t[..end]
        });
        tracing::info!(
            %method, path, status, latency_ms, txn_id, result = info.result, "request"
        );
    } else if QUIET.contains(&path.as_str()) {
        tracing::debug!(%method, path, status, latency_ms, "request");
    } else {
        tracing::info!(%method, path, status, latency_ms, "request");
    }
    resp
}
