//! `/admin`: are payments coming in, and are they reaching the backend?

use askama::Template;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};

use super::auth::Session;
use super::view::{self, Badge};
use super::{AdminError, Layout, render};
use crate::app::AppState;
use crate::db::{self, admin as q};

/// One period's payments.
struct PeriodView {
    label: &'static str,
    count: i64,
    sum: String,
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
    oldest_pending: Option<String>,
    oldest_pending_age: String,
    failing: i64,
    failing_rows: Vec<FailingView>,
    more_failing: bool,
    last_request: Option<String>,
    last_request_age: String,
    webhook_url: Option<String>,
    check_url: Option<String>,
    payments_enabled: bool,
    charts: Vec<super::charts::Chart>,
}

/// `GET /admin`.
pub async fn get(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    match page(&state, &session).await {
        Ok(p) => render(StatusCode::OK, &p),
        Err(e) => e.into_response(),
    }
}

async fn page(state: &AppState, session: &Session) -> Result<DashboardPage, AdminError> {
    let now = Utc::now();
    let today = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or(now.naive_utc());
    let since = [
        today.format("%Y-%m-%d %H:%M:%S").to_string(),
        db::format_time(now - TimeDelta::days(7)),
        db::format_time(now - TimeDelta::days(30)),
    ];
    let d = state
        .db
        .read(move |c| q::dashboard(c, [&since[0], &since[1], &since[2]]))
        .await?;
    let chart_data = state
        .db
        .read(move |c| db::charts::chart_data(c, now))
        .await?;
    let charts = super::charts::dashboard_charts(&chart_data, d.pending);
    let labels = ["Today (UTC)", "Last 7 days", "Last 30 days"];
    let periods = labels
        .into_iter()
        .zip(d.totals)
        .map(|(label, t)| PeriodView {
            label,
            count: t.count,
            sum: view::money(t.sum_minor),
        })
        .collect();
    let naive_now = now.naive_utc();
    let age = |t: &Option<String>| {
        t.as_deref()
            .map(|t| view::ago(t, naive_now))
            .unwrap_or_default()
    };
    Ok(DashboardPage {
        layout: Layout::new("Dashboard", session, "dashboard"),
        periods,
        pending: d.pending,
        oldest_pending_age: age(&d.oldest_pending),
        oldest_pending: d.oldest_pending,
        failing: d.failing,
        more_failing: d.failing > d.failing_rows.len() as i64,
        failing_rows: d
            .failing_rows
            .into_iter()
            .map(|r| FailingView {
                href: format!("/admin/transactions/{}", r.id),
                id: r.id,
                code: r.code,
                account: r.account,
                sum: view::money(r.sum_minor),
                attempts: r.attempts,
                badge: view::txn_badge(r.status, r.attempts, r.delivery_due_ms),
                last_error: r.last_error.unwrap_or_default(),
                last_attempt_at: r.last_attempt_at.unwrap_or_default(),
            })
            .collect(),
        last_request_age: age(&d.last_request),
        last_request: d.last_request,
        webhook_url: state.config.webhook_url.as_ref().map(view::public_url),
        check_url: state.config.check_url.as_ref().map(view::public_url),
        payments_enabled: state.config.payments_enabled,
        charts,
    })
}
