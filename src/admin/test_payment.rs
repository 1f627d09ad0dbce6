//! `/admin/test-payment`: send a test payment through the real chain and watch every step.
//!
//! The gateway calls its own `/payment` over loopback HTTP(S), with its own Basic auth, so
//! the test goes through exactly what QIWI's requests go through (listener, request log,
//! auth, allow-list, handler, writer, webhook worker). What makes it a test payment is not
//! something the request carries (an outsider could copy that) but its `txn_id`, reserved in
//! `test_payment` by the logged-in admin before the pay is sent: the database marks the row
//! `test = 1` in the transaction that stores it (migration 0007), so its webhook carries
//! `"test": true` and the totals and charts leave it out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use askama::Template;
use axum::Form;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use ipnet::IpNet;
use serde::Deserialize;

use super::session::Session;
use super::view;
use super::{AdminError, Layout, Settings, not_found_page, render};
use crate::db::{self, Db, test_payments as q};
use crate::http::ServerSettings;
use crate::qiwi;
use crate::qiwi::Amount;
use crate::webhook;

/// Longest part of an answer kept for the page.
const KEEP: usize = 2048;

/// The form.
#[derive(Debug, Deserialize)]
pub struct TestForm {
    /// The account to check and pay.
    #[serde(default)]
    account: String,
    /// The sum, e.g. `10.45`.
    #[serde(default)]
    sum: String,
}

/// A test payment in the list.
struct Row {
    href: String,
    code: String,
    account: String,
    sum: String,
    created_at: String,
    username: String,
}

/// `GET /admin/test-payment`: the form and the latest tests.
#[derive(Template)]
#[template(path = "test_payment.html")]
pub struct FormPage {
    layout: Layout,
    account: String,
    sum: String,
    error: Option<&'static str>,
    rows: Vec<Row>,
    webhook_configured: bool,
    check_configured: bool,
    /// Why `/payment` will refuse this gateway's own call, and the setting that fixes it.
    refused_by_allowlist: Option<String>,
}

/// One step of a test payment.
struct Step {
    title: &'static str,
    badge: view::Badge,
    detail: String,
    body: Option<String>,
}

/// `GET /admin/test-payment/{code}`: each step of one test payment.
#[derive(Template)]
#[template(path = "test_payment_run.html")]
pub struct RunPage {
    layout: Layout,
    code: String,
    account: String,
    sum: String,
    created_at: String,
    username: String,
    steps: Vec<Step>,
    transaction_href: Option<String>,
    attempts: Vec<AttemptView>,
    waiting: bool,
}

struct AttemptView {
    created_at: String,
    status: String,
    ok: bool,
    error: String,
    duration_ms: i64,
    body: String,
}

/// What the test payment pages take from the application's state (an axum substate): they
/// play QIWI against this gateway, so they need the protocol's credentials, the server's
/// address and scheme, the check and webhook URLs, and the admin UI's display settings.
#[derive(Clone)]
pub struct TestPaymentState {
    /// The database.
    pub db: Db,
    /// The admin UI's section.
    pub settings: Arc<Settings>,
    /// The server's section (HTTPS or not).
    pub server: Arc<ServerSettings>,
    /// The protocol's section (Basic auth on `/payment`).
    pub qiwi: Arc<qiwi::Settings>,
    /// The account check's section.
    pub check: Arc<qiwi::check::Settings>,
    /// The webhook's section.
    pub webhook: Arc<webhook::Settings>,
    /// The address the server listens on, once bound.
    pub local_addr: Arc<OnceLock<SocketAddr>>,
}

fn form_page(
    state: &TestPaymentState,
    session: &Session,
    account: String,
    sum: String,
    error: Option<&'static str>,
    rows: Vec<q::TestPayment>,
) -> FormPage {
    FormPage {
        layout: Layout::new(
            "Test payment",
            session,
            "",
            &view::Fmt::new(&state.settings),
        ),
        account,
        sum,
        error,
        rows: rows
            .into_iter()
            .map(|t| Row {
                href: format!("/admin/test-payment/{}", t.code),
                code: t.code,
                account: t.account,
                sum: view::money(i128::from(t.sum_minor)),
                created_at: t.created_at,
                username: t.username,
            })
            .collect(),
        webhook_configured: state.webhook.url.is_some(),
        check_configured: state.check.url.is_some(),
        refused_by_allowlist: allowlist_refusal(state),
    }
}

/// The address this gateway's own call to `/payment` comes from: the address it connects to
/// (a loopback connection's source is its destination), loopback for a wildcard listener.
fn loopback_ip(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// When `qiwi_allowed_ips` would refuse the test's own call to `/payment` (403), says so and
/// names the exact setting that lets it through (the list as it is, plus that address).
/// `None` when the call is allowed (an empty list allows everyone).
fn allowlist_refusal(state: &TestPaymentState) -> Option<String> {
    let addr = state
        .local_addr
        .get()
        .copied()
        .unwrap_or(state.server.listen_addr);
    let ip = loopback_ip(addr);
    if crate::http::client_ip::allowed(&state.qiwi.allowed_ips, ip) {
        return None;
    }
    let net = IpNet::from(ip.to_canonical());
    let list = state
        .qiwi
        .allowed_ips
        .iter()
        .map(ToString::to_string)
        .chain([net.to_string()])
        .collect::<Vec<_>>();
    Some(format!(
        "This gateway calls its own /payment from {ip}, which QIWI_ALLOWED_IPS \
         (qiwi_allowed_ips) does not list, so /payment refuses the test with HTTP 403 \
         Forbidden. Add {net} to it: QIWI_ALLOWED_IPS={} in the environment, or \
         qiwi_allowed_ips = [{}] in config.toml, then restart the gateway.",
        list.join(","),
        list.iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `GET /admin/test-payment`.
pub async fn get(
    State(state): State<TestPaymentState>,
    Extension(session): Extension<Session>,
) -> Result<Response, AdminError> {
    let rows = state.db.read(|c| q::recent(c, 20)).await?;
    let page = form_page(&state, &session, "test".into(), "1.00".into(), None, rows);
    Ok(render(StatusCode::OK, &page))
}

/// `POST /admin/test-payment`: reserves a `txn_id`, sends `check` then `pay` to our own
/// `/payment`, records the answers and shows the run.
pub async fn post(
    State(state): State<TestPaymentState>,
    Extension(session): Extension<Session>,
    Form(form): Form<TestForm>,
) -> Result<Response, AdminError> {
    let account = form.account.trim().to_owned();
    let sum = Amount::parse(form.sum.trim());
    let error = match (&account, &sum) {
        (a, _) if a.is_empty() || a.chars().count() > 200 => {
            Some("The account must be 1 to 200 characters.")
        }
        (_, Err(_)) => Some("The sum must look like 10, 10.5 or 10.45."),
        _ => None,
    };
    let (Some(addr), None, Ok(sum)) = (state.local_addr.get().copied(), error, sum) else {
        let rows = state.db.read(|c| q::recent(c, 20)).await?;
        let page = form_page(
            &state,
            &session,
            account,
            form.sum,
            error.or(Some("The gateway is not listening yet.")),
            rows,
        );
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    // 19 digits starting with 9: within QIWI's 20, and far from any real terminal's counter.
    let code = format!("9{:018}", rand::random::<u64>() % 1_000_000_000_000_000_000);
    let mut t = q::TestPayment {
        code: code.clone(),
        account: account.clone(),
        sum_minor: sum.minor(),
        created_at: db::format_time(Utc::now()),
        username: session.username.clone(),
        ..q::TestPayment::default()
    };
    let reserved = t.clone();
    state
        .db
        .writer()
        .write(move |c| q::reserve(c, &reserved))
        .await?;
    tracing::info!(txn_id = %code, user = %session.username, "test payment sent");

    // What the check backend answers for this account, asked directly, to show it raw.
    if let Some(url) = &state.check.url {
        let mut url = url.clone();
        url.query_pairs_mut().append_pair("account", &account);
        match crate::outbound::client(state.check.timeout) {
            Ok(client) => match client.get(url).send().await {
                Ok(resp) => {
                    t.check_status = Some(i64::from(resp.status().as_u16()));
                    t.check_body = Some(bounded(&resp.text().await.unwrap_or_default()));
                }
                Err(e) => t.check_body = Some(format!("no answer: {}", chain(&e))),
            },
            Err(e) => t.check_body = Some(format!("no client: {e}")),
        }
    }

    let sum_text = sum.to_string();
    let txn_date = (Utc::now() + chrono::TimeDelta::hours(3))
        .format("%Y%m%d%H%M%S")
        .to_string();
    t.check_answer = Some(
        call_payment(
            &state,
            addr,
            &[
                ("command", "check"),
                ("txn_id", &code),
                ("account", &account),
                ("sum", &sum_text),
            ],
        )
        .await,
    );
    t.pay_answer = Some(
        call_payment(
            &state,
            addr,
            &[
                ("command", "pay"),
                ("txn_id", &code),
                ("account", &account),
                ("sum", &sum_text),
                ("txn_date", &txn_date),
            ],
        )
        .await,
    );
    let recorded = t.clone();
    state
        .db
        .writer()
        .write(move |c| q::record(c, &recorded))
        .await?;
    Ok(Redirect::to(&format!("/admin/test-payment/{code}")).into_response())
}

/// Calls our own `/payment` over loopback (HTTPS when the gateway serves TLS; the certificate
/// is for the public name, not the loopback address, so it is not checked) with our Basic
/// auth. Returns the status line and body as received, or why there was no answer.
async fn call_payment(
    state: &TestPaymentState,
    addr: std::net::SocketAddr,
    params: &[(&str, &str)],
) -> String {
    let ip = loopback_ip(addr);
    let scheme = if state.server.https() {
        "https"
    } else {
        "http"
    };
    let Ok(mut url) = url::Url::parse(&format!(
        "{scheme}://{}/payment",
        std::net::SocketAddr::new(ip, addr.port())
    )) else {
        return "no answer: bad loopback URL".into();
    };
    url.query_pairs_mut().extend_pairs(params);
    let client = match crate::outbound::loopback_client(
        state.check.timeout + std::time::Duration::from_secs(5),
    ) {
        Ok(c) => c,
        Err(e) => return format!("no client: {e}"),
    };
    let mut req = client.get(url);
    if let Some(auth) = &state.qiwi.http_auth {
        req = req.basic_auth(&auth.username, Some(&auth.password.0));
    }
    match req.send().await {
        Err(e) => format!("no answer: {}", chain(&e)),
        Ok(resp) => {
            let status = resp.status();
            let ct = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.text().await.unwrap_or_default();
            format!("HTTP {status}, {ct}\n{}", bounded(&body))
        }
    }
}

fn bounded(s: &str) -> String {
    s.chars().take(KEEP).collect()
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The `<result>` of an answer recorded by [`call_payment`].
fn result_of(answer: &str) -> Option<i64> {
    answer
        .split("<result>")
        .nth(1)?
        .split("</result>")
        .next()?
        .trim()
        .parse()
        .ok()
}

/// One QIWI answer as a step. `refused_403`: what explains an HTTP 403 (the allow-list
/// refusing the gateway's own address, [`allowlist_refusal`]), shown instead of the bare
/// status line.
fn answer_step(title: &'static str, answer: Option<&str>, refused_403: Option<&str>) -> Step {
    let (badge, detail) = match answer.map(|a| (a, result_of(a))) {
        None => (bad("not sent"), "not sent".to_owned()),
        Some((a, None)) if a.starts_with("HTTP 403") => (
            bad("HTTP 403"),
            refused_403.map_or_else(
                || {
                    "HTTP 403 Forbidden: /payment refused this gateway's own address; \
                     QIWI_ALLOWED_IPS lists it now, so a new test should pass."
                        .to_owned()
                },
                str::to_owned,
            ),
        ),
        Some((_, Some(0))) => (ok("result 0"), "result 0: OK".to_owned()),
        Some((_, Some(r))) => (
            bad("refused"),
            format!("result {r}: {}", view::result_meaning(r)),
        ),
        Some((a, None)) => (
            bad("no answer"),
            a.lines().next().unwrap_or_default().to_owned(),
        ),
    };
    Step {
        title,
        badge,
        detail,
        body: answer.map(str::to_owned),
    }
}

fn ok(label: &'static str) -> view::Badge {
    view::Badge { class: "ok", label }
}

fn bad(label: &'static str) -> view::Badge {
    view::Badge {
        class: "bad",
        label,
    }
}

fn muted(label: &'static str) -> view::Badge {
    view::Badge {
        class: "muted",
        label,
    }
}

/// `GET /admin/test-payment/{code}`: reload to follow the webhook.
pub async fn show(
    State(state): State<TestPaymentState>,
    Extension(session): Extension<Session>,
    Path(code): Path<String>,
) -> Result<Response, AdminError> {
    let Some((t, row, attempts)) = state.db.read(move |c| q::get(c, &code)).await? else {
        return Ok(not_found_page(&session));
    };
    let mut steps = Vec::new();
    steps.push(match (&state.check.url, t.check_status) {
        (None, _) => Step {
            title: "1. Check backend",
            badge: muted("not configured"),
            detail: "No QIWI_CHECK_URL: every well-formed account is accepted.".into(),
            body: None,
        },
        (Some(_), Some(s)) => Step {
            title: "1. Check backend",
            badge: if s == 200 {
                ok("HTTP 200")
            } else {
                bad("refused")
            },
            detail: format!("GET QIWI_CHECK_URL?account=… answered HTTP {s}"),
            body: t.check_body.clone(),
        },
        (Some(_), None) => Step {
            title: "1. Check backend",
            badge: bad("no answer"),
            detail: t.check_body.clone().unwrap_or_default(),
            body: None,
        },
    });
    let refused = allowlist_refusal(&state);
    steps.push(answer_step(
        "2. QIWI check (our /payment answer, display fields included)",
        t.check_answer.as_deref(),
        refused.as_deref(),
    ));
    steps.push(answer_step(
        "3. QIWI pay (our /payment answer)",
        t.pay_answer.as_deref(),
        refused.as_deref(),
    ));
    steps.push(match &row {
        None => Step {
            title: "4. Stored payment",
            badge: bad("not stored"),
            detail: "No row with this txn_id: the pay was refused.".into(),
            body: None,
        },
        Some(r) => Step {
            title: "4. Stored payment",
            badge: if r.test {
                ok("stored, test")
            } else {
                bad("not marked")
            },
            detail: format!(
                "qiwi_transaction id {} (prv_txn), sum {}, stored {} UTC, status {}",
                r.id,
                view::money(i128::from(r.sum_minor)),
                r.created_at,
                r.status
            ),
            body: None,
        },
    });
    let delivered = row.as_ref().is_some_and(|r| r.status == 1);
    let webhook = match (&state.webhook.url, &row) {
        (None, _) => Step {
            title: "5. Webhook to the merchant",
            badge: muted("not configured"),
            detail: "No QIWI_WEBHOOK_URL: nothing is sent until one is configured.".into(),
            body: None,
        },
        (Some(_), None) => Step {
            title: "5. Webhook to the merchant",
            badge: muted("nothing to send"),
            detail: "No payment was stored.".into(),
            body: None,
        },
        (Some(_), Some(r)) if r.status == 1 => Step {
            title: "5. Webhook to the merchant",
            badge: ok("delivered"),
            detail: format!(
                "acknowledged {} UTC after {} attempt(s)",
                r.delivered_at.as_deref().unwrap_or(""),
                r.attempts
            ),
            body: None,
        },
        (Some(_), Some(r)) if r.attempts > 0 => Step {
            title: "5. Webhook to the merchant",
            badge: bad("failing"),
            detail: format!(
                "{} attempt(s), last error: {}; retried on the usual schedule",
                r.attempts,
                r.last_error.as_deref().unwrap_or("")
            ),
            body: None,
        },
        (Some(_), Some(_)) => Step {
            title: "5. Webhook to the merchant",
            badge: muted("waiting"),
            detail: "Not attempted yet: reload in a moment.".into(),
            body: None,
        },
    };
    let waiting = state.webhook.url.is_some() && row.is_some() && !delivered;
    steps.push(webhook);
    Ok(render(
        StatusCode::OK,
        &RunPage {
            layout: Layout::new(
                "Test payment",
                &session,
                "",
                &view::Fmt::new(&state.settings),
            ),
            transaction_href: row
                .as_ref()
                .map(|r| format!("/admin/transactions/{}", r.id)),
            code: t.code,
            account: t.account,
            sum: view::money(i128::from(t.sum_minor)),
            created_at: t.created_at,
            username: t.username,
            steps,
            attempts: attempts
                .into_iter()
                .map(|a| AttemptView {
                    created_at: a.created_at,
                    status: a
                        .http_status
                        .map_or("no answer".to_owned(), |s| format!("HTTP {s}")),
                    ok: a.error.is_none(),
                    error: a.error.unwrap_or_default(),
                    duration_ms: a.duration_ms,
                    body: a.response_body,
                })
                .collect(),
            waiting,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_read_from_the_recorded_answer() {
        let a = "HTTP 200 OK, text/xml; charset=utf-8\n<?xml version=\"1.0\"?>\n<response>\n<result>0</result>\n</response>";
        assert_eq!(result_of(a), Some(0));
        assert_eq!(result_of("no answer: connection refused"), None);
        let s = answer_step(
            "x",
            Some("HTTP 200 OK, text/xml\n<response><result>300</result></response>"),
            None,
        );
        assert_eq!(s.badge.class, "bad");
        assert!(s.detail.starts_with("result 300"), "{}", s.detail);
    }
}
