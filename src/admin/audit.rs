//! `/admin/audit`: the manual actions taken (resends, password changes, ...), who took them,
//! when and from which address; and [`record`], which the actions call.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::session::Session;
use super::view;
use super::{AdminError, Layout, Settings, render};
use crate::db::{self, Db, DbError, audit as q};
use crate::http::ServerSettings;

/// Rows on the audit page.
const AUDIT_PAGE: usize = 100;

/// Records that `session`'s user did `action` (`detail`: which rows or how many) from the
/// client `peer` names (behind a trusted proxy, the client it forwards for).
pub async fn record(
    db: &Db,
    server: &ServerSettings,
    session: &Session,
    peer: SocketAddr,
    headers: &HeaderMap,
    action: &str,
    detail: String,
) -> Result<(), DbError> {
    let ip = crate::http::client_ip::client_ip(peer.ip(), headers, &server.trusted_proxies);
    let row = q::AuditRow {
        id: 0,
        created_at: db::now_text(),
        username: session.username.clone(),
        ip: ip.to_string(),
        action: action.to_owned(),
        detail,
    };
    db.writer().write(move |c| q::insert_audit(c, &row)).await
}

/// The audit detail of a reconciliation run: which report, which file, how many differences.
pub fn reconcile_detail(id: i64, file_name: &str, differences: u64) -> String {
    format!("reconciliation {id} of “{file_name}”: {differences} difference(s)")
}

/// One action as the page shows it.
struct AuditView {
    created_at: String,
    username: String,
    ip: String,
    action: String,
    detail: String,
}

/// The audit page.
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    layout: Layout,
    rows: Vec<AuditView>,
    older: Option<String>,
}

/// `GET /admin/audit`: the newest actions, [`AUDIT_PAGE`] a page (`?before=id` goes on).
pub async fn list(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AdminError> {
    let q = view::query_map(raw.as_deref());
    let before = q.get("before").and_then(|v| v.parse::<i64>().ok());
    let rows = db
        .read_bulk(move |c| q::audit(c, before, AUDIT_PAGE))
        .await?;
    let zone = view::Fmt::new(&settings);
    let older = (rows.len() == AUDIT_PAGE)
        .then(|| rows.last().map(|r| format!("/admin/audit?before={}", r.id)))
        .flatten();
    let rows = rows
        .into_iter()
        .map(|r| AuditView {
            created_at: zone.time(&r.created_at),
            username: r.username,
            ip: if r.ip.is_empty() {
                "command line".to_owned()
            } else {
                r.ip
            },
            action: r.action,
            detail: r.detail,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &AuditPage {
            layout: Layout::new("Audit", &session, "audit", &zone),
            rows,
            older,
        },
    ))
}
