//! `/payment`: every request is answered per the protocol and logged in `qiwi_http_log`,
//! whatever its outcome.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request as HttpRequest, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::check::Verdict;
use super::{Answer, Command, Params, Rejection, Request, ResultCode, Rules, parse_params};
use crate::app::AppState;
use crate::db::http_log::{self, LogEntry};
use crate::db::transactions::{self, NewPayment, StoreOutcome};
use crate::db::{self, DbError};
use crate::http::client_ip;
use crate::http::request_log::PaymentInfo;

/// Largest request body accepted; larger ones get 413 and are logged without their body.
pub const MAX_BODY: usize = 64 * 1024;

/// What a request is answered, before it is logged.
struct Outcome {
    status: StatusCode,
    body: String,
    answer: Option<Answer>,
    /// The log row was already written (by the pay job, in the payment's commit).
    logged: bool,
}

impl Outcome {
    fn http(status: StatusCode, text: &str) -> Outcome {
        Outcome {
            status,
            body: text.to_owned(),
            answer: None,
            logged: false,
        }
    }

    fn protocol(answer: Answer) -> Outcome {
        Outcome {
            status: StatusCode::OK,
            body: answer.render(),
            answer: Some(answer),
            logged: false,
        }
    }

    /// Copies what was answered into the request's log row.
    fn record(&self, log: &mut LogEntry) {
        log.status = self.status.as_u16();
        log.response = self.body.clone();
        log.result = self.answer.as_ref().map(|a| i32::from(a.result.code()));
    }
}

/// Handles `/payment` for any method.
pub async fn any(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: HttpRequest,
) -> Response {
    let (parts, body) = req.into_parts();
    let ip = client_ip::client_ip(peer.ip(), &parts.headers, &state.config.trusted_proxies);
    let mut log = LogEntry {
        ip: ip.to_string(),
        url: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        method: parts.method.to_string(),
        headers: crate::http::headers_json(&parts.headers),
        created_at: db::now_text(),
        ..LogEntry::default()
    };

    let mut command = None;
    // The allow-list and Basic auth were decided from the head by `http::payment_guard`.
    let outcome = read_and_answer(&state, &parts, body, &mut log, &mut command).await;
    let log_txn_id = log.txn_id.clone();
    let outcome = finish_log(&state, log, outcome).await;

    // The request log line and the request metrics are written by `http::request_log`.
    let info = PaymentInfo {
        command,
        result: outcome.answer.as_ref().map(|a| a.result.code()),
        txn_id: log_txn_id,
    };
    let mut resp = respond(outcome);
    resp.extensions_mut().insert(info);
    resp
}

/// Reads the body (bounded) and answers the request.
async fn read_and_answer(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Body,
    log: &mut LogEntry,
    command: &mut Option<&'static str>,
) -> Outcome {
    match axum::body::to_bytes(body, MAX_BODY).await {
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Outcome::http(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
            } else {
                Outcome::http(StatusCode::BAD_REQUEST, "unreadable request body\n")
            }
        }
        Ok(bytes) => {
            log.body = String::from_utf8_lossy(&bytes).into_owned();
            answer(state, parts, bytes, log, command).await
        }
    }
}

/// Writes the log row unless the pay job already did, in the same commit as the payment.
/// A protocol answer whose log row cannot be written becomes 1: the request is not recorded,
/// so QIWI must ask again.
async fn finish_log(state: &AppState, mut log: LogEntry, outcome: Outcome) -> Outcome {
    if outcome.logged {
        return outcome;
    }
    outcome.record(&mut log);
    let started = Instant::now();
    let result = state
        .db
        .writer()
        .write(move |c| http_log::insert(c, &log))
        .await;
    if result.is_ok() {
        state.metrics.db_write(started.elapsed());
    }
    match (result, &outcome.answer) {
        (Ok(_), _) | (Err(_), None) => outcome,
        (Err(e), Some(a)) => {
            tracing::error!(error = %e, "could not log a protocol request");
            Outcome::protocol(Answer::code(ResultCode::Temporary, a.osmp_txn_id.clone()))
        }
    }
}

fn respond(o: Outcome) -> Response {
    let content_type = if o.status == StatusCode::OK {
        "text/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut resp = (o.status, Body::from(o.body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    match o.status {
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
    resp
}

async fn answer(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Bytes,
    log: &mut LogEntry,
    command: &mut Option<&'static str>,
) -> Outcome {
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    if method != Method::GET && method != Method::POST {
        return Outcome::http(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n");
    }
    let mut params = Params::default();
    parse_params(uri.query().unwrap_or("").as_bytes(), &mut params);
    if !body.is_empty() {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_none_or(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            let echo = params.txn_id().map(str::to_owned);
            return reject(Rejection::Malformed("unsupported content type"), echo);
        }
        parse_params(&body, &mut params);
    }
    let echo = params.txn_id().map(str::to_owned);
    log.txn_id = echo.clone();
    *command = params.command();
    let cfg = &state.config;
    let rules = Rules {
        account_pattern: &cfg.account_pattern,
        min_sum: cfg.min_sum,
        max_sum: cfg.max_sum,
    };
    let req = match params.parse(&rules) {
        Ok(r) => r,
        Err(rejection) => return reject(rejection, echo),
    };
    match req.command {
        Command::Check => check(state, &req).await,
        Command::Pay => pay(state, req, log.clone()).await,
    }
}

fn reject(r: Rejection, osmp_txn_id: Option<String>) -> Outcome {
    Outcome::protocol(Answer {
        osmp_txn_id,
        prv_txn: None,
        sum: None,
        result: r.result_code(),
        comment: r.comment(),
    })
}

async fn check(state: &AppState, req: &Request) -> Outcome {
    let echo = Some(req.txn_id.clone());
    if !state.config.payments_enabled {
        return reject(Rejection::Forbidden, echo);
    }
    let verdict = match &state.checker {
        None => Verdict::Valid,
        Some(c) => c.check(&req.account).await,
    };
    match verdict {
        Verdict::Valid => Outcome::protocol(Answer::code(ResultCode::Ok, echo)),
        Verdict::NotFound => reject(Rejection::AccountNotFound, echo),
        Verdict::Unavailable => reject(Rejection::Temporary, echo),
    }
}

/// Stores the payment and its log row in one job of the writer, so the answer costs one
/// shared commit, and answers only once that commit is durable.
async fn pay(state: &AppState, req: Request, mut log: LogEntry) -> Outcome {
    let echo = Some(req.txn_id.clone());
    let payment = NewPayment {
        code: req.txn_id,
        account: req.account,
        sum_minor: req.sum.minor(),
        txn_date: req
            .txn_date
            .as_ref()
            .map_or_else(String::new, |d| d.as_str().to_owned()),
        extra: serde_json::to_string(&req.extra).unwrap_or_else(|_| "{}".into()),
    };
    let accept_new = state.config.payments_enabled;
    let sum_minor = payment.sum_minor;
    let job_echo = echo.clone();
    let started = Instant::now();
    let result = state
        .db
        .writer()
        .write(move |c| -> Result<(Outcome, bool), DbError> {
            let now = chrono::Utc::now();
            let stored = transactions::store(
                c,
                &payment,
                accept_new,
                &db::format_time(now),
                now.timestamp_millis(),
            )?;
            let created = matches!(stored, StoreOutcome::Created(_));
            let outcome = pay_outcome(stored, job_echo);
            outcome.record(&mut log);
            http_log::insert(c, &log)?;
            Ok((outcome, created))
        })
        .await;
    match result {
        Ok((outcome, created)) => {
            state.metrics.db_write(started.elapsed());
            if created {
                state.metrics.payment_stored(sum_minor);
                state.payment_stored.notify_one();
            }
            Outcome {
                logged: true,
                ..outcome
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "could not store a payment");
            reject(Rejection::Temporary, echo)
        }
    }
}

fn pay_outcome(stored: StoreOutcome, echo: Option<String>) -> Outcome {
    match stored {
        StoreOutcome::Created(s) | StoreOutcome::Repeated(s) => Outcome::protocol(Answer {
            osmp_txn_id: echo,
            prv_txn: Some(s.id),
            sum: Some(super::Amount::from_minor(s.sum_minor)),
            result: ResultCode::Ok,
            comment: "OK",
        }),
        StoreOutcome::Conflict(_) => reject(Rejection::Conflict, echo),
        StoreOutcome::Refused => reject(Rejection::Forbidden, echo),
    }
}
