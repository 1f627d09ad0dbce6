//! `/admin`: are payments coming in, and are they reaching the backend?

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Days, NaiveTime, Utc};

use super::session::Session;
use super::transactions::BadgeCtx;
use super::view::{self, Badge, Fmt};
use super::{AdminError, Layout, Settings, render};
use crate::db::Db;
use crate::db::dashboard as q;
use crate::ops::certs::TlsStatus;
use crate::qiwi;
use crate::webhook;

/// One period's payments.
struct PeriodView {
    label: &'static str,
    since: String,
    count: String,
    sum: String,
}

/// Something the operator should fix, shown above everything else.
struct Warning {
    /// A stable name (tests and CSS find it by this).
    id: &'static str,
    /// What is wrong and what to do.
    text: String,
}

/// A failing delivery.
struct FailingView {
    href: String,
    id: i64,
    code: String,
    account: String,
    sum: String,
    attempts: i64,
    badge: Badge,
    last_error: String,
    last_attempt_at: String,
}

/// The dashboard.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    layout: Layout,
    periods: Vec<PeriodView>,
    pending: i64,
    /// The backlog for people: the count, or "more than 100,000" past what is counted.
    pending_text: String,
    oldest_pending: Option<String>,
    oldest_pending_age: String,
    failing: i64,
    failing_rows: Vec<FailingView>,
    more_failing: bool,
    last_request: Option<String>,
    last_request_age: String,
    webhook_url: Option<String>,
    check_url: Option<String>,
    charts: Vec<super::charts::Chart>,
    warnings: Vec<Warning>,
}

/// What the dashboard takes from the application's state (an axum substate): it sums up the
/// whole setup, so it reads the protocol's, the check's, the webhook's and operations'
/// sections besides its own and the database.
#[derive(Clone)]
pub struct DashboardState {
    /// The database.
    pub db: Db,
    /// The admin UI's section.
    pub settings: Arc<Settings>,
    /// The protocol's section (Basic auth, allow-list, payments switch).
    pub qiwi: Arc<qiwi::Settings>,
    /// The account check's section (its URL).
    pub check: Arc<qiwi::check::Settings>,
    /// The webhook's section (URL, accepted statuses).
    pub webhook: Arc<webhook::Settings>,
    /// Operations' section (the metrics token).
    pub ops: Arc<crate::ops::Settings>,
    /// The served certificate and any problem renewing it.
    pub tls: Arc<TlsStatus>,
}

/// The configuration and delivery problems worth a warning on the dashboard.
fn warnings(state: &DashboardState, d: &q::Dashboard) -> Vec<Warning> {
    let c = state;
    let mut w = Vec::new();
    if c.qiwi.http_auth.is_none() {
        w.push(Warning {
            id: "payment-open",
            text: if c.qiwi.allowed_ips.is_empty() {
                "/payment is open: no HTTP Basic auth and no IP allow-list, so anyone who finds \
                 the address can send payments. Set HTTP_AUTH_USERNAME and HTTP_AUTH_PASSWORD \
                 (and QIWI_ALLOWED_IPS)."
                    .to_owned()
            } else {
                "/payment has no HTTP Basic auth (only the IP allow-list guards it). Set \
                 HTTP_AUTH_USERNAME and HTTP_AUTH_PASSWORD."
                    .to_owned()
            },
        });
    }
    if c.ops.metrics_token.is_none() {
        w.push(Warning {
            id: "metrics-open",
            text: "/metrics is open to anyone: set METRICS_TOKEN to require a bearer token."
                .to_owned(),
        });
    }
    if !c.qiwi.payments_enabled {
        w.push(Warning {
            id: "payments-off",
            text: "Payments are switched off (PAYMENTS_ENABLED=false): new payments are \
                   refused with result 7."
                .to_owned(),
        });
    }
    if c.webhook.url.is_none() {
        w.push(Warning {
            id: "no-webhook",
            text: format!(
                "No webhook URL is configured (QIWI_WEBHOOK_URL): payments are stored but not \
                 forwarded; {}{} wait.",
                if d.pending_capped { "more than " } else { "" },
                d.pending
            ),
        });
    }
    if let Some(text) = state.tls.warning(Utc::now()) {
        w.push(Warning {
            id: "tls-certificate",
            text,
        });
    }
    if let Some((status, at)) = &d.unaccepted_2xx {
        w.push(Warning {
            id: "unaccepted-2xx",
            text: format!(
                "Your backend answered HTTP {status} to a webhook ({} {}): only {} count as \
                 delivered, so it is retried. Answer one of them, or add {status} to \
                 webhook_success_statuses (WEBHOOK_SUCCESS_STATUSES).",
                Fmt::new(&c.settings).time(at),
                Fmt::new(&c.settings).zone(),
                c.webhook
                    .success_statuses
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    w
}

/// `GET /admin`.
pub async fn get(
    State(state): State<DashboardState>,
    Extension(session): Extension<Session>,
) -> Result<Response, AdminError> {
    Ok(render(StatusCode::OK, &page(&state, &session).await?))
}

/// The first local days of the periods: today, the last 7 and the last 30 days (today
/// included), as days of the display zone.
/// The backlog card's figure: the count grouped per locale, or "more than 100,000" once the
/// count stops at [`q::BACKLOG_COUNTED`].
fn backlog_text(zone: &Fmt, d: &q::Dashboard) -> String {
    if d.pending_capped {
        format!("more than {}", zone.count(d.pending))
    } else {
        zone.count(d.pending)
    }
}

fn period_days(zone: &Fmt, now: chrono::DateTime<Utc>) -> [chrono::NaiveDate; 3] {
    let today = now.with_timezone(&zone.tz).date_naive();
    let back = |n| today.checked_sub_days(Days::new(n)).unwrap_or(today);
    [today, back(6), back(29)]
}

async fn page(state: &DashboardState, session: &Session) -> Result<DashboardPage, AdminError> {
    let now = Utc::now();
    let zone = Fmt::new(&state.settings);
    let days = period_days(&zone, now);
    let since = days.map(|d| zone.utc_of(d.and_time(NaiveTime::MIN)));
    let d = state
        .db
        .read_bulk({
            let accepted = state.webhook.success_statuses.clone();
            move |c| q::dashboard(c, [&since[0], &since[1], &since[2]], &accepted)
        })
        .await?;
    let chart_data = state
        .db
        .read({
            let tz = zone.tz;
            move |c| crate::db::charts::chart_data(c, now, tz)
        })
        .await?;
    let charts =
        super::charts::dashboard_charts(&chart_data, d.pending, d.pending_capped, zone.zone());
    let labels = ["Today", "Last 7 days", "Last 30 days"];
    let periods = labels
        .into_iter()
        .zip(d.totals)
        .zip(days)
        .map(|((label, t), day)| PeriodView {
            label,
            since: day.format("%Y-%m-%d").to_string(),
            count: zone.count(t.count),
            sum: zone.money(t.sum_minor),
        })
        .collect();
    let ctx = BadgeCtx::new();
    let naive_now = now.naive_utc();
    let age = |t: &Option<String>| {
        t.as_deref()
            .map(|t| view::ago(t, naive_now))
            .unwrap_or_default()
    };
    Ok(DashboardPage {
        warnings: warnings(state, &d),
        layout: Layout::new("Dashboard", session, "dashboard", &zone),
        periods,
        pending: d.pending,
        pending_text: backlog_text(&zone, &d),
        oldest_pending_age: age(&d.oldest_pending),
        oldest_pending: d.oldest_pending.as_deref().map(|t| zone.time(t)),
        failing: d.failing,
        more_failing: d.failing > d.failing_rows.len() as i64,
        failing_rows: d
            .failing_rows
            .into_iter()
            .map(|r| FailingView {
                badge: ctx.badge(&r),
                href: format!("/admin/transactions/{}", r.id),
                id: r.id,
                code: r.code,
                account: r.account,
                sum: zone.money(r.sum_minor.into()),
                attempts: r.attempts,
                last_error: r.last_error.unwrap_or_default(),
                last_attempt_at: r.last_attempt_at.map(|t| zone.time(&t)).unwrap_or_default(),
            })
            .collect(),
        last_request_age: age(&d.last_request),
        last_request: d.last_request.as_deref().map(|t| zone.time(t)),
        webhook_url: state.webhook.url.as_ref().map(view::public_url),
        check_url: state.check.url.as_ref().map(view::public_url),
        charts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_local_midnights() {
        let zone = Fmt {
            tz: "Europe/Moscow".parse().unwrap(),
            locale: super::view::DisplayLocale::En,
        };
        // 22:30 UTC on Jan 31 is already Feb 1 in Moscow.
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-31T22:30:00Z")
            .unwrap()
            .to_utc();
        let days = period_days(&zone, now);
        let since = days.map(|d| zone.utc_of(d.and_time(NaiveTime::MIN)));
        assert_eq!(since[0], "2024-01-31 21:00:00");
        assert_eq!(since[1], "2024-01-25 21:00:00");
        assert_eq!(since[2], "2024-01-02 21:00:00");
    }
}
