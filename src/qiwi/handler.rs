//! `/payment` (and `/payment/`): a thin handler. It extracts what arrived, refuses what never
//! reaches the protocol (405, 413, 400; 403 and 401 come from `http::payment_guard`), and hands the parameters to
//! [`Service`]; every request is logged in `qiwi_http_log`, whatever its outcome (a URL or
//! body over `db::http_log::FIELD_CAP` is answered 300 and logged as its head, its length
//! and a marker: `db::http_log::stored_field`). A
//! `tracing` span per request carries `command` and `txn_id`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRef, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any as any_method;
use tokio::sync::Notify;
use tracing::Instrument;

use super::Settings;
use super::check::Checker;
use super::service::{Served, Service};
use super::{Params, parse_params};
use crate::db::http_log::{LogEntry, stored_field};
use crate::db::{self, Db};
use crate::http::request_log::PaymentInfo;
use crate::http::{ServerSettings, client_ip};
use crate::ops::Metrics;

/// Largest request body accepted; larger ones get 413 and are logged without their body. The
/// same cap `http::payment_guard` applies to a declared `Content-Length` before reading.
pub const MAX_BODY: usize = crate::http::payment_guard::MAX_BODY as usize;

/// What `/payment` takes from the application's state (an axum substate: [`FromRef`]).
#[derive(Clone)]
pub struct QiwiState {
    /// The protocol's section of the configuration.
    pub settings: Arc<Settings>,
    /// The server's section: `trusted_proxies`, to know the client's address.
    pub server: Arc<ServerSettings>,
    /// The database.
    pub db: Db,
    /// The account checker, when `QIWI_CHECK_URL` is set.
    pub checker: Option<Checker>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Woken whenever a new payment is stored: its webhook is due.
    pub payment_stored: Arc<Notify>,
}

/// The protocol's paths, `/payment` and `/payment/`, on one router piece: whatever layer is
/// put on it (auth, allow-list, log) covers both alike.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    QiwiState: FromRef<S>,
{
    Router::new()
        .route("/payment", any_method(any))
        .route("/payment/", any_method(any))
}

/// Handles `/payment` for any method.
pub async fn any(
    State(state): State<QiwiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: HttpRequest,
) -> Response {
    let span = tracing::info_span!(
        "payment",
        command = tracing::field::Empty,
        txn_id = tracing::field::Empty
    );
    handle(state, peer, req).instrument(span).await
}

async fn handle(state: QiwiState, peer: SocketAddr, req: HttpRequest) -> Response {
    let service = Service {
        rules: state.settings.rules(),
        payments_enabled: state.settings.payments_enabled,
        db: &state.db,
        checker: state.checker.as_ref(),
        metrics: &state.metrics,
        payment_stored: &state.payment_stored,
    };
    let (parts, body) = req.into_parts();
    let ip = client_ip::client_ip(peer.ip(), &parts.headers, &state.server.trusted_proxies);
    let raw_url = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    // A URL or body over FIELD_CAP is no QIWI request: its row keeps the head and says so.
    let (url, url_cut) = stored_field(raw_url.as_bytes());
    if url_cut {
        state.metrics.log_cut("url");
    }
    let log = LogEntry {
        ip: ip.to_string(),
        url,
        method: parts.method.to_string(),
        headers: crate::http::headers_json(&parts.headers),
        created_at: db::now_text(),
        ..LogEntry::default()
    };
    // The allow-list, Basic auth and the declared size were decided from the head by
    // `http::payment_guard`, the layer on `routes()`, before anything here reads the body.
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let (status, text) = if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
            } else {
                (StatusCode::BAD_REQUEST, "unreadable request body\n")
            };
            return refused(&service, log, status, text).await;
        }
    };
    let (body, body_cut) = stored_field(&bytes);
    if body_cut {
        state.metrics.log_cut("body");
    }
    let log = LogEntry { body, ..log };
    if parts.method != Method::GET && parts.method != Method::POST {
        return refused(
            &service,
            log,
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET or POST\n",
        )
        .await;
    }
    let mut params = Params::default();
    parse_params(parts.uri.query().unwrap_or("").as_bytes(), &mut params);
    if !bytes.is_empty() {
        if is_form(&parts.headers) {
            parse_params(&bytes, &mut params);
        } else {
            params.refuse_body();
        }
    }
    let oversized = url_cut || body_cut;
    if oversized {
        params.refuse_oversized();
    }
    let span = tracing::Span::current();
    if let Some(c) = params.command() {
        span.record("command", c.as_str());
    }
    // An oversized request's txn_id is junk too: the log files it under a bounded prefix.
    let log_txn_id = params
        .log_txn_id()
        .map(|t| if oversized { bounded(&t).to_owned() } else { t });
    if let Some(t) = &log_txn_id {
        span.record("txn_id", bounded(t));
    }
    let log = LogEntry {
        txn_id: log_txn_id.clone(),
        ..log
    };
    let served = service.answer(&params, log).await;
    protocol(served, log_txn_id)
}

/// Whether a body is a form (`application/x-www-form-urlencoded`, or no content type).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_none_or(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// A hostile `txn_id` is cut for the log line; a valid one is at most 20 digits.
fn bounded(t: &str) -> &str {
    let end = t.char_indices().nth(40).map_or(t.len(), |(i, _)| i);
    &t[..end]
}

/// Logs and answers a request that never reaches the protocol.
async fn refused(
    service: &Service<'_>,
    mut log: LogEntry,
    status: StatusCode,
    text: &'static str,
) -> Response {
    log.status = status.as_u16();
    log.response = text.to_owned();
    service.refuse(log).await;
    let mut resp = (status, text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    match status {
        StatusCode::UNAUTHORIZED => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"qiwi-gateway\", charset=\"UTF-8\""),
            );
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            h.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        _ => {}
    }
    resp.extensions_mut().insert(PaymentInfo::default());
    resp
}

/// A protocol answer: HTTP 200 with the XML body, and what the request log line needs.
fn protocol(served: Served, txn_id: Option<String>) -> Response {
    let info = PaymentInfo {
        command: served.command.map(super::Command::as_str),
        result: Some(served.answer.result.code()),
        txn_id,
    };
    let mut resp = (StatusCode::OK, Body::from(served.body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    resp.extensions_mut().insert(info);
    resp
}
