//! `/admin/transactions`: the payments, filtered and paged; one payment with its webhook
//! attempts; resending webhooks; the CSV export.

use std::collections::HashMap;

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Session;
use super::view::{self, Badge, Pager};
use super::{AdminError, Layout, not_found_page, render};
use crate::app::AppState;
use crate::db::admin::{self as q, LogFilter, TxnFilter, TxnRow, TxnState};
use crate::qiwi::Amount;

/// Rows per batch of the CSV export: each batch is one short read.
const EXPORT_BATCH: usize = 1000;
/// Attempts shown on a transaction's page.
const ATTEMPTS_SHOWN: usize = 100;

/// The filter form as typed, to show it back.
#[derive(Default)]
struct TxnForm {
    state: String,
    account: String,
    code: String,
    from: String,
    to: String,
    min: String,
    max: String,
}

impl TxnForm {
    fn query(&self) -> String {
        view::encode_query(&[
            ("state", &self.state),
            ("account", &self.account),
            ("code", &self.code),
            ("from", &self.from),
            ("to", &self.to),
            ("min", &self.min),
            ("max", &self.max),
        ])
    }
}

/// Reads the filters of the query string; unusable ones are reported, not guessed.
fn parse_filter(q: &HashMap<String, String>) -> (TxnForm, TxnFilter, Vec<String>) {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let form = TxnForm {
        state: get("state"),
        account: get("account"),
        code: get("code"),
        from: get("from"),
        to: get("to"),
        min: get("min"),
        max: get("max"),
    };
    let mut errors = Vec::new();
    let state = match form.state.as_str() {
        "" => None,
        "undelivered" => Some(TxnState::Undelivered),
        "delivered" => Some(TxnState::Delivered),
        "failing" => Some(TxnState::Failing),
        _ => {
            errors.push("Unknown delivery state.".to_owned());
            None
        }
    };
    let (from, until) = view::time_range(q.get("from"), q.get("to"), &mut errors);
    let mut amount = |label: &str, s: &str| {
        (!s.is_empty())
            .then(|| match Amount::parse(s) {
                Ok(a) => Some(a.minor()),
                Err(_) => {
                    errors.push(format!("“{label}” is not a sum like 10 or 10.50."));
                    None
                }
            })
            .flatten()
    };
    let min_minor = amount("Min sum", &form.min);
    let max_minor = amount("Max sum", &form.max);
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let filter = TxnFilter {
        state,
        account: nonempty(&form.account),
        code: nonempty(&form.code),
        from,
        until,
        min_minor,
        max_minor,
    };
    (form, filter, errors)
}

/// A transaction in a list.
struct TxnView {
    href: String,
    id: i64,
    code: String,
    account: String,
    sum: String,
    badge: Badge,
    created_at: String,
    attempts: i64,
    last_error: String,
}

impl From<TxnRow> for TxnView {
    fn from(r: TxnRow) -> TxnView {
        TxnView {
            href: format!("/admin/transactions/{}", r.id),
            id: r.id,
            badge: view::txn_badge(r.status, r.attempts, r.delivery_due_ms),
            sum: view::money(r.sum_minor),
            code: r.code,
            account: r.account,
            created_at: r.created_at,
            attempts: r.attempts,
            last_error: r.last_error.unwrap_or_default(),
        }
    }
}

/// The transactions list.
#[derive(Template)]
#[template(path = "transactions.html")]
pub struct TransactionsPage {
    layout: Layout,
    form: TxnForm,
    errors: Vec<String>,
    filtered: bool,
    rows: Vec<TxnView>,
    pager: Pager,
    csv_href: String,
    notice: Option<String>,
}

/// `GET /admin/transactions`.
pub async fn list(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = view::query_map(raw.as_deref());
    let (form, filter, errors) = parse_filter(&q);
    let cursor = view::cursor(&q);
    let page = if errors.is_empty() {
        match state
            .db
            .read(move |c| q::transactions(c, &filter, cursor))
            .await
        {
            Ok(p) => Some(p),
            Err(e) => return AdminError::from(e).into_response(),
        }
    } else {
        None
    };
    let qs = form.query();
    let notice = q
        .get("queued")
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| {
            let mut s = format!("{n} undelivered transaction(s) queued for delivery now.");
            if state.config.webhook_url.is_none() {
                s.push_str(" No QIWI_WEBHOOK_URL is configured: they are sent once one is.");
            }
            s
        });
    let (rows, pager) = match page {
        Some(p) => (
            p.rows.iter().cloned().map(TxnView::from).collect(),
            Pager::new("/admin/transactions", &qs, &p, cursor),
        ),
        None => (
            Vec::new(),
            Pager::new::<TxnRow>(
                "/admin/transactions",
                &qs,
                &q::Page {
                    rows: Vec::new(),
                    older: None,
                    newer: None,
                    budget_hit: false,
                },
                None,
            ),
        ),
    };
    let csv_href = if qs.is_empty() {
        "/admin/transactions.csv".to_owned()
    } else {
        format!("/admin/transactions.csv?{qs}")
    };
    render(
        StatusCode::OK,
        &TransactionsPage {
            layout: Layout::new("Transactions", &session, "transactions"),
            filtered: !qs.is_empty(),
            form,
            errors,
            rows,
            pager,
            csv_href,
            notice,
        },
    )
}

/// Quotes a CSV field, and defuses one a spreadsheet would run as a formula.
fn csv_field(out: &mut String, v: &str) {
    let risky = v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    out.push('"');
    if risky {
        out.push('\'');
    }
    // Invisible characters written out, as on the pages (see admin::visible).
    out.push_str(&super::visible::text(v).replace('"', "\"\""));
    out.push('"');
}

fn csv_line(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// `GET /admin/transactions.csv`: every transaction the filters select, streamed in batches
/// (each a short read, so a long export neither holds a read transaction open nor memory).
pub async fn csv(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let q = view::query_map(raw.as_deref());
    let (_, filter, errors) = parse_filter(&q);
    if !errors.is_empty() {
        return (StatusCode::BAD_REQUEST, errors.join("\n")).into_response();
    }
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(2);
    tokio::spawn(async move {
        let mut out = String::new();
        csv_line(
            &mut out,
            &[
                "id",
                "txn_id",
                "account",
                "sum",
                "status",
                "created_at_utc",
                "txn_date",
                "attempts",
                "last_error",
                "delivered_at_utc",
                "extra",
            ],
        );
        let mut after = None;
        loop {
            let f = filter.clone();
            let batch = state
                .db
                .read(move |c| q::export_batch(c, &f, after, EXPORT_BATCH))
                .await;
            let (rows, more) = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed");
                    tx.abort(std::io::Error::other("export failed"));
                    return;
                }
            };
            for r in &rows {
                csv_line(
                    &mut out,
                    &[
                        &r.id.to_string(),
                        &r.code,
                        &r.account,
                        &view::money(r.sum_minor),
                        &r.status.to_string(),
                        &r.created_at,
                        &r.txn_date,
                        &r.attempts.to_string(),
                        r.last_error.as_deref().unwrap_or(""),
                        r.delivered_at.as_deref().unwrap_or(""),
                        &r.extra,
                    ],
                );
            }
            if tx
                .send_data(Bytes::from(std::mem::take(&mut out)))
                .await
                .is_err()
            {
                return; // the client went away
            }
            match more {
                Some(id) => after = Some(id),
                None => return,
            }
        }
    });
    let name = format!(
        "attachment; filename=\"transactions-{}.csv\"",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    let mut resp = Body::new(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// A webhook attempt.
struct AttemptView {
    created_at: String,
    http_status: String,
    http_class: &'static str,
    outcome: String,
    ok: bool,
    duration_ms: i64,
    response_body: String,
}

/// A logged request of this payment.
struct RequestView {
    href: String,
    created_at: String,
    method: String,
    status: i64,
    status_class: &'static str,
    result: String,
    result_class: &'static str,
    url: String,
}

/// One transaction.
#[derive(Template)]
#[template(path = "transaction.html")]
pub struct TransactionPage {
    layout: Layout,
    id: i64,
    code: String,
    account: String,
    sum: String,
    badge: Badge,
    created_at: String,
    txn_date: String,
    extras: Vec<(String, String)>,
    attempts_count: i64,
    last_error: String,
    last_attempt_at: String,
    delivered_at: String,
    due: String,
    attempts: Vec<AttemptView>,
    requests: Vec<RequestView>,
    requests_href: String,
    resend_action: String,
    notice: Option<String>,
    webhook_configured: bool,
}

/// `YYYYMMDDHHMMSS` as `YYYY-MM-DD HH:MM:SS`, or the text as it is.
fn txn_date(s: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| s.to_owned())
}

/// `GET /admin/transactions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return not_found_page(&session);
    };
    let found = state
        .db
        .read(move |c| {
            let Some(t) = q::transaction(c, id)? else {
                return Ok(None);
            };
            let attempts = q::attempts(c, id, ATTEMPTS_SHOWN)?;
            let filter = LogFilter {
                txn_id: Some(t.row.code.clone()),
                ..LogFilter::default()
            };
            let requests = q::requests(c, &filter, None)?.rows;
            Ok(Some((t, attempts, requests)))
        })
        .await;
    let (t, attempts, requests) = match found {
        Ok(Some(f)) => f,
        Ok(None) => return not_found_page(&session),
        Err(e) => return AdminError::from(e).into_response(),
    };
    let q = view::query_map(raw.as_deref());
    let webhook_configured = state.config.webhook_url.is_some();
    let notice = q.contains_key("resent").then(|| {
        if webhook_configured {
            "Webhook delivery queued: it is sent now, and the attempt appears below.".to_owned()
        } else {
            "Webhook delivery queued, but no QIWI_WEBHOOK_URL is configured: it is sent once \
             one is."
                .to_owned()
        }
    });
    let due = match t.row.delivery_due_ms {
        None => "not scheduled".to_owned(),
        Some(ms) => chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| format!("{} UTC", crate::db::format_time(d)))
            .unwrap_or_default(),
    };
    let r = t.row;
    let page = TransactionPage {
        layout: Layout::new(format!("Transaction {}", r.code), &session, "transactions"),
        id: r.id,
        badge: view::txn_badge(r.status, r.attempts, r.delivery_due_ms),
        sum: view::money(r.sum_minor),
        txn_date: txn_date(&r.txn_date),
        extras: view::json_rows(&t.extra),
        attempts_count: r.attempts,
        last_error: r.last_error.unwrap_or_default(),
        last_attempt_at: r.last_attempt_at.unwrap_or_default(),
        delivered_at: r.delivered_at.unwrap_or_default(),
        due,
        attempts: attempts
            .into_iter()
            .map(|a| AttemptView {
                created_at: a.created_at,
                http_class: a.http_status.map_or("bad", view::http_class),
                http_status: a
                    .http_status
                    .map_or_else(|| "—".to_owned(), |s| s.to_string()),
                ok: a.error.is_none(),
                outcome: a.error.unwrap_or_else(|| "delivered".to_owned()),
                duration_ms: a.duration_ms,
                response_body: a.response_body,
            })
            .collect(),
        requests: requests
            .into_iter()
            .map(|l| RequestView {
                href: format!("/admin/log/{}", l.id),
                created_at: l.created_at,
                method: l.method,
                status_class: view::http_class(l.status),
                status: l.status,
                result_class: l.result.map_or("muted", view::result_class),
                result: l.result.map_or_else(|| "—".to_owned(), |c| c.to_string()),
                url: l.url,
            })
            .collect(),
        requests_href: format!(
            "/admin/log?{}",
            view::encode_query(&[("txn", r.code.as_str())])
        ),
        resend_action: format!("/admin/transactions/{}/resend", r.id),
        notice,
        webhook_configured,
        code: r.code,
        account: r.account,
        created_at: r.created_at,
    };
    render(StatusCode::OK, &page)
}

/// `POST /admin/transactions/{id}/resend`: makes its webhook due now.
pub async fn resend(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return not_found_page(&session);
    };
    match state.resend(Some(id)).await {
        Ok(0) => not_found_page(&session),
        Ok(_) => {
            tracing::info!(transaction = id, user = %session.username, "webhook resend requested");
            Redirect::to(&format!("/admin/transactions/{id}?resent=1")).into_response()
        }
        Err(e) => AdminError::from(e).into_response(),
    }
}

/// `POST /admin/transactions/resend-undelivered`: makes every undelivered webhook due now.
pub async fn resend_all(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    match state.resend(None).await {
        Ok(n) => {
            tracing::info!(count = n, user = %session.username, "resend of all undelivered webhooks requested");
            Redirect::to(&format!("/admin/transactions?state=undelivered&queued={n}"))
                .into_response()
        }
        Err(e) => AdminError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut s = String::new();
        csv_line(&mut s, &["a\"b", "=cmd()", "-5", "plain"]);
        assert_eq!(s, "\"a\"\"b\",\"'=cmd()\",\"'-5\",\"plain\"\r\n");
    }

    #[test]
    fn filters_read_from_the_query() {
        let q = view::query_map(Some("state=failing&account=+a1+&min=10.5&to=2024-02-01"));
        let (form, f, errors) = parse_filter(&q);
        assert!(errors.is_empty());
        assert_eq!(f.state, Some(TxnState::Failing));
        assert_eq!(f.account.as_deref(), Some("a1"));
        assert_eq!(f.min_minor, Some(1050));
        assert_eq!(f.until.as_deref(), Some("2024-02-02 00:00:00"));
        assert_eq!(
            form.query(),
            "state=failing&account=a1&to=2024-02-01&min=10.5"
        );
        let (_, _, errors) = parse_filter(&view::query_map(Some("min=ten&state=x")));
        assert_eq!(errors.len(), 2);
    }
}
