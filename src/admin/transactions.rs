//! `/admin/transactions`: the payments, filtered and paged; one payment with its webhook
//! attempts; resending webhooks; the CSV export.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{Session, cookies_secure};
use super::shared::EXPORTS_AT_ONCE;
use super::view::DisplayLocale;
use super::view::{self, Badge, Fmt, FormQuery, PageQuery, Pager};
use super::{AdminError, AdminState, Layout, Settings, audit, not_found_page, render};
use crate::db::Db;
use crate::db::http_log::{self, LogFilter};
use crate::db::outbox;
use crate::db::pager::Page;
use crate::db::transactions::{self as q, FilteredTotals, TxnFilter, TxnRow, TxnState};
use crate::http::ServerSettings;
use crate::qiwi::Amount;
use crate::webhook::{self, Outbox};

/// Rows per batch of the CSV export: each batch is one short read, walking at most the list
/// pages' scan budget.
const EXPORT_BATCH: usize = 1000;
/// The cookie that carries a one-time notice across a redirect (so a reload does not repeat
/// it).
const FLASH_COOKIE: &str = "qg_flash";

/// Attempts shown on a transaction's page.
const ATTEMPTS_SHOWN: usize = 100;

/// The filter form of the transactions list (`?state=&account=&code=&from=&to=&min=&max=&test=`)
/// as typed, to show it back.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct TxnForm {
    state: String,
    account: String,
    code: String,
    from: String,
    to: String,
    min: String,
    max: String,
    test: String,
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
            ("test", &self.test),
        ])
    }
}

/// Reads the filters of the query string; unusable ones are reported, not guessed.
fn parse_filter(form: TxnForm, zone: &Fmt) -> (TxnForm, TxnFilter, Vec<String>) {
    let mut errors = Vec::new();
    let test = match form.test.as_str() {
        "" => None,
        "only" => Some(true),
        "exclude" => Some(false),
        _ => {
            errors.push("Unknown choice for test payments.".to_owned());
            None
        }
    };
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
    let (from, until) = view::time_range(
        Some(&form.from).filter(|s| !s.is_empty()),
        Some(&form.to).filter(|s| !s.is_empty()),
        zone,
        &mut errors,
    );
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
        test,
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
    /// A test payment (shown with a badge).
    test: bool,
}

/// What a row's delivery badge depends on beside the row: now (a due time passed reads as
/// "queued").
#[derive(Clone, Copy)]
pub struct BadgeCtx {
    /// Unix ms.
    pub now_ms: i64,
}

impl BadgeCtx {
    /// The context of this moment.
    pub fn new() -> BadgeCtx {
        BadgeCtx {
            now_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// The badge of `r`.
    pub fn badge(&self, r: &TxnRow) -> Badge {
        view::txn_badge(r.status, r.attempts, r.delivery_due_ms, self.now_ms)
    }
}

impl TxnView {
    fn new(r: TxnRow, zone: &Fmt, ctx: BadgeCtx) -> TxnView {
        TxnView {
            href: format!("/admin/transactions/{}", r.id),
            id: r.id,
            badge: ctx.badge(&r),
            sum: zone.money(r.sum_minor.into()),
            code: r.code,
            account: r.account,
            created_at: zone.time(&r.created_at),
            attempts: r.attempts,
            last_error: r.last_error.unwrap_or_default(),
            test: false,
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
    totals: Option<TotalsView>,
}

/// Count and total of the filtered set.
struct TotalsView {
    /// `false`: the figures are lower bounds.
    exact: bool,
    count: String,
    sum: String,
    /// How many rows were walked at most.
    budget: String,
}

impl TotalsView {
    fn new(t: FilteredTotals, zone: &Fmt) -> TotalsView {
        TotalsView {
            exact: t.exact,
            count: zone.count(t.count),
            sum: zone.money(t.sum_minor),
            budget: zone.count(q::TOTALS_BUDGET),
        }
    }
}

/// The one-time notice in `headers`' flash cookie, if any.
fn flash(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == FLASH_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value of the flash cookie: `value` for the next page, or deleting it.
fn flash_cookie(secure: bool, value: Option<&str>) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let v = match value {
        Some(v) => format!(
            "{FLASH_COOKIE}={v}; Path=/admin/transactions; Max-Age=60; HttpOnly; SameSite=Strict{secure}"
        ),
        None => format!(
            "{FLASH_COOKIE}=; Path=/admin/transactions; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
        ),
    };
    HeaderValue::from_str(&v).ok()
}

/// `GET /admin/transactions`.
#[allow(clippy::too_many_arguments)] // an axum handler's arguments are its extractors
pub async fn list(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    State(server): State<Arc<ServerSettings>>,
    State(webhook): State<Arc<webhook::Settings>>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    FormQuery(form): FormQuery<TxnForm>,
    FormQuery(at): FormQuery<PageQuery>,
) -> Result<Response, AdminError> {
    let zone = Fmt::new(&settings);
    let (form, filter, errors) = parse_filter(form, &zone);
    let cursor = at.cursor();
    let (page, totals) = if errors.is_empty() {
        let (p, t) = db
            .read_bulk(move |c| {
                let page = q::transactions(c, &filter, cursor)?;
                let totals = q::transaction_totals(c, &filter)?;
                let ids: Vec<i64> = page.rows.iter().map(|r| r.id).collect();
                let tests = crate::db::test_payments::test_ids(c, &ids)?;
                Ok(((page, tests), totals))
            })
            .await?;
        (Some(p), Some(TotalsView::new(t, &zone)))
    } else {
        (None, None)
    };
    let qs = form.query();
    let flashed = flash(&headers);
    let notice = flashed
        .as_deref()
        .and_then(|f| f.strip_prefix("queued-"))
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| {
            let mut s = format!(
                "{n} undelivered transaction(s) queued for delivery now. Reload to see the \
                 worker's progress."
            );
            if webhook.url.is_none() {
                s.push_str(" No QIWI_WEBHOOK_URL is configured: they are sent once one is.");
            }
            s
        });
    let ctx = BadgeCtx::new();
    let (rows, pager) = match page {
        Some((p, tests)) => (
            p.rows
                .iter()
                .cloned()
                .map(|r| {
                    let mut v = TxnView::new(r, &zone, ctx);
                    v.test = tests.contains(&v.id);
                    v
                })
                .collect(),
            Pager::new("/admin/transactions", &qs, &p, cursor),
        ),
        None => (
            Vec::new(),
            Pager::new::<TxnRow>(
                "/admin/transactions",
                &qs,
                &Page {
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
    let mut resp = render(
        StatusCode::OK,
        &TransactionsPage {
            layout: Layout::new("Transactions", &session, "transactions", &zone),
            filtered: !qs.is_empty(),
            form,
            errors,
            rows,
            pager,
            csv_href,
            notice,
            totals,
        },
    );
    if flashed.is_some()
        && let Some(v) = flash_cookie(cookies_secure(&settings, &server), None)
    {
        // Shown once: a reload no longer says it.
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Whether a spreadsheet could run `v` as a formula (OWASP's "CSV injection": a leading `=`,
/// `+`, `-`, `@`, tab or CR). A sign followed only by digits, spaces, `()`, `-`, `.` or `,`
/// (`+79991234567`, `+7 (999) 123-45-67`, `-5`) names no function, reference or DDE link, so
/// it cannot run anything and is written unchanged.
fn formula_risk(v: &str) -> bool {
    match v.chars().next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !v[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '(' | ')' | '-' | '.' | ',')),
        _ => false,
    }
}

/// Writes one CSV cell: always quoted (quotes doubled), and a cell a spreadsheet would run as
/// a formula defused with a leading `'`. Every cell of the export goes through here.
fn csv_field(out: &mut String, v: &str) {
    out.push('"');
    if formula_risk(v) {
        out.push('\'');
    }
    // Invisible characters written out, as on the pages (see admin::visible).
    out.push_str(&super::visible::text(v).replace('"', "\"\""));
    out.push('"');
}

/// One CSV line of `fields` separated by `sep`, ended by CRLF (RFC 4180).
fn csv_line(out: &mut String, fields: &[&str], sep: char) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// The CSV separator: `?sep=semicolon` or `?sep=comma`, else the locale's (`;` for `ru`,
/// whose Excel reads `,` as the decimal mark).
fn csv_separator(q: &HashMap<String, String>, locale: DisplayLocale) -> Result<char, String> {
    match q.get("sep").map(String::as_str) {
        Some("semicolon" | ";") => Ok(';'),
        Some("comma" | ",") => Ok(','),
        Some(other) => Err(format!(
            "unknown separator {other:?}: use sep=semicolon or sep=comma"
        )),
        None => Ok(match locale {
            DisplayLocale::Ru => ';',
            DisplayLocale::En => ',',
        }),
    }
}

/// `GET /admin/transactions.csv`: every transaction the filters select, streamed in batches
/// (each a short, budgeted read, so a long export holds neither a read connection nor
/// memory), UTF-8 with a BOM so Excel reads it as such. Times are in the display zone, named
/// in the header; sums use the locale's decimal mark; the state is a word. At most
/// [`EXPORTS_AT_ONCE`] run at once: one more gets 429.
pub async fn csv(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    State(admin): State<AdminState>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = view::query_map(raw.as_deref());
    let zone = Fmt::new(&settings);
    let (_, filter, mut errors) = parse_filter(view::form_query(raw.as_deref()), &zone);
    let sep = csv_separator(&q, zone.locale).unwrap_or_else(|e| {
        errors.push(e);
        ','
    });
    if !errors.is_empty() {
        return (StatusCode::BAD_REQUEST, errors.join("\n")).into_response();
    }
    let Ok(slot) = admin.exports.0.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "10")],
            format!(
                "{EXPORTS_AT_ONCE} exports are running already; try again when one has \
                 finished.\n"
            ),
        )
            .into_response();
    };
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(2);
    tokio::spawn(async move {
        let _slot = slot;
        let ctx = BadgeCtx::new();
        let tz = zone.zone();
        let created = format!("created_at ({tz})");
        let delivered = format!("delivered_at ({tz})");
        // The BOM: Excel otherwise reads UTF-8 as the system's ANSI code page.
        let mut out = String::from("\u{feff}");
        csv_line(
            &mut out,
            &[
                "id",
                "txn_id",
                "account",
                "sum",
                "state",
                &created,
                "txn_date",
                "attempts",
                "last_error",
                &delivered,
                "extra",
            ],
            sep,
        );
        let mut after = None;
        loop {
            let f = filter.clone();
            let batch = db
                .read_bulk(move |c| q::export_batch(c, &f, after, EXPORT_BATCH))
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
                        &zone.money_cell(r.sum_minor.into()),
                        ctx.badge(r).label,
                        &zone.time(&r.created_at),
                        &r.txn_date,
                        &r.attempts.to_string(),
                        r.last_error.as_deref().unwrap_or(""),
                        &r.delivered_at
                            .as_deref()
                            .map(|t| zone.time(t))
                            .unwrap_or_default(),
                        &r.extra,
                    ],
                    sep,
                );
            }
            // A budgeted batch may have found nothing: send only what there is.
            if !out.is_empty()
                && tx
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
    /// The request as sent (attempts made before migration 0008 have none).
    request: Option<outbox::AttemptRequest>,
    /// Its id, for the signature debugger's choice.
    id: i64,
}

/// `s` as one shell word: single-quoted, a `'` inside written `'\''` (POSIX sh).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `curl` command that sends `r` again as it was sent (the URL's masked parts, `***`, are
/// to be filled in by hand: they are credentials).
pub fn curl_command(r: &outbox::AttemptRequest) -> String {
    let mut out = format!("curl -X POST {}", sh_quote(&r.url));
    for line in r.headers.lines().filter(|l| !l.is_empty()) {
        out.push_str(" \\\n  -H ");
        out.push_str(&sh_quote(line));
    }
    out.push_str(" \\\n  --data-binary ");
    out.push_str(&sh_quote(&r.body));
    out
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
    /// "Copy as curl" of the newest attempt that has its request stored.
    curl: Option<String>,
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
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    State(webhook): State<Arc<webhook::Settings>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AdminError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found_page(&session));
    };
    let found = db
        .read_bulk(move |c| {
            let Some(t) = q::transaction(c, id)? else {
                return Ok(None);
            };
            let attempts = outbox::attempts(c, id, ATTEMPTS_SHOWN)?;
            let filter = LogFilter {
                txn_id: Some(t.row.code.clone()),
                ..LogFilter::default()
            };
            let requests = http_log::requests(c, &filter, None)?.rows;
            Ok(Some((t, attempts, requests)))
        })
        .await?;
    let Some((t, attempts, requests)) = found else {
        return Ok(not_found_page(&session));
    };
    let q = view::query_map(raw.as_deref());
    let webhook_configured = webhook.url.is_some();
    let notice = q.contains_key("resent").then(|| {
        if webhook_configured {
            "Webhook delivery queued: it is sent now, and the attempt appears below.".to_owned()
        } else {
            "Webhook delivery queued, but no QIWI_WEBHOOK_URL is configured: it is sent once \
             one is."
                .to_owned()
        }
    });
    let zone = Fmt::new(&settings);
    let ctx = BadgeCtx::new();
    let due = match t.row.delivery_due_ms {
        _ if t.row.status == 1 => "none: delivered".to_owned(),
        // Nothing is sent without a URL, whatever the schedule says.
        _ if !webhook_configured => "waiting: no webhook URL configured".to_owned(),
        None => "not scheduled".to_owned(),
        Some(ms) if ms <= ctx.now_ms => "now (queued)".to_owned(),
        Some(ms) => chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| format!("{} {}", zone.instant(d), zone.zone()))
            .unwrap_or_default(),
    };
    let curl = attempts
        .iter()
        .find_map(|a| a.request.as_ref())
        .map(curl_command);
    let r = t.row;
    let page = TransactionPage {
        curl,
        layout: Layout::new(
            format!("Transaction {}", r.code),
            &session,
            "transactions",
            &zone,
        ),
        id: r.id,
        badge: ctx.badge(&r),
        sum: zone.money(r.sum_minor.into()),
        txn_date: txn_date(&r.txn_date),
        extras: view::json_rows(&t.extra),
        attempts_count: r.attempts,
        last_error: r.last_error.unwrap_or_default(),
        last_attempt_at: r.last_attempt_at.map(|t| zone.time(&t)).unwrap_or_default(),
        delivered_at: r.delivered_at.map(|t| zone.time(&t)).unwrap_or_default(),
        due,
        attempts: attempts
            .into_iter()
            .map(|a| AttemptView {
                created_at: zone.time(&a.created_at),
                http_class: a.http_status.map_or("bad", view::http_class),
                http_status: a
                    .http_status
                    .map_or_else(|| "—".to_owned(), |s| s.to_string()),
                ok: a.error.is_none(),
                outcome: a.error.unwrap_or_else(|| "delivered".to_owned()),
                duration_ms: a.duration_ms,
                response_body: a.response_body,
                request: a.request,
                id: a.id,
            })
            .collect(),
        requests: requests
            .into_iter()
            .map(|l| RequestView {
                href: format!("/admin/log/{}", l.id),
                created_at: zone.time(&l.created_at),
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
        created_at: zone.time(&r.created_at),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /admin/transactions/{id}/resend`: makes its webhook due now.
pub async fn resend(
    State(outbox): State<Outbox>,
    State(db): State<Db>,
    State(server): State<Arc<ServerSettings>>,
    Extension(session): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found_page(&session));
    };
    if outbox.resend(Some(id)).await? == 0 {
        return Ok(not_found_page(&session));
    }
    tracing::info!(transaction = id, user = %session.username, "webhook resend requested");
    let detail = format!("transaction {id}");
    audit::record(&db, &server, &session, peer, &headers, "resend", detail).await?;
    Ok(Redirect::to(&format!("/admin/transactions/{id}?resent=1")).into_response())
}

/// `POST /admin/transactions/resend-undelivered`: makes every undelivered webhook due now.
pub async fn resend_all(
    State(outbox): State<Outbox>,
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    State(server): State<Arc<ServerSettings>>,
    Extension(session): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let n = outbox.resend(None).await?;
    tracing::info!(count = n, user = %session.username, "resend of all undelivered webhooks requested");
    let detail = format!("{n} transaction(s)");
    audit::record(&db, &server, &session, peer, &headers, "resend-all", detail).await?;
    // The notice rides in a one-time cookie: the list's URL stays clean, and a reload shows
    // the rows' state without repeating it.
    let mut resp = Redirect::to("/admin/transactions?state=undelivered").into_response();
    if let Some(v) = flash_cookie(
        cookies_secure(&settings, &server),
        Some(&format!("queued-{n}")),
    ) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut s = String::new();
        csv_line(&mut s, &["a\"b", "=cmd()", "-5", "plain"], ',');
        assert_eq!(s, "\"a\"\"b\",\"'=cmd()\",\"-5\",\"plain\"\r\n");
        let mut s = String::new();
        csv_line(
            &mut s,
            &[
                "+79991234567",
                "+7 (999) 123-45-67",
                "+cmd|' /C calc'!A0",
                "-2+3+cmd|' /C calc'!A0",
                "@SUM(A1)",
                "\t=1",
            ],
            ';',
        );
        assert_eq!(
            s,
            "\"+79991234567\";\"+7 (999) 123-45-67\";\"'+cmd|' /C calc'!A0\";\
             \"'-2+3+cmd|' /C calc'!A0\";\"'@SUM(A1)\";\"'\t=1\"\r\n"
        );
    }

    #[test]
    fn the_separator_follows_the_choice_then_the_locale() {
        let q = |s| view::query_map(Some(s));
        assert_eq!(csv_separator(&q(""), DisplayLocale::Ru), Ok(';'));
        assert_eq!(csv_separator(&q(""), DisplayLocale::En), Ok(','));
        assert_eq!(
            csv_separator(&q("sep=semicolon"), DisplayLocale::En),
            Ok(';')
        );
        assert_eq!(csv_separator(&q("sep=comma"), DisplayLocale::Ru), Ok(','));
        assert!(csv_separator(&q("sep=tab"), DisplayLocale::En).is_err());
    }

    #[test]
    fn filters_read_from_the_query() {
        let q = view::form_query(Some("state=failing&account=+a1+&min=10.5&to=2024-02-01"));
        let (form, f, errors) = parse_filter(q, &Fmt::utc());
        assert!(errors.is_empty());
        assert_eq!(f.state, Some(TxnState::Failing));
        assert_eq!(f.account.as_deref(), Some("a1"));
        assert_eq!(f.min_minor, Some(1050));
        assert_eq!(f.until.as_deref(), Some("2024-02-02 00:00:00"));
        assert_eq!(
            form.query(),
            "state=failing&account=a1&to=2024-02-01&min=10.5"
        );
        let (_, _, errors) = parse_filter(view::form_query(Some("min=ten&state=x")), &Fmt::utc());
        assert_eq!(errors.len(), 2);
    }
}
