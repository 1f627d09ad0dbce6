//! `/admin/reconcile`: upload QIWI's payment registry, see the report (the same as
//! `qiwi-gateway reconcile FILE`), list past reconciliations, download one as CSV.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::Session;
use super::{AdminError, Layout, Settings, not_found_page, render};
use crate::db::Db;
use crate::db::reconcile as q;
use crate::http::ServerSettings;
use crate::reconcile::{self, Difference, Kind, RunError, Source, Totals, render::money};

/// Past reconciliations listed on the page.
const LISTED: usize = 100;
/// Differing lines shown on the report page; the CSV has them all.
const SHOWN: usize = 2_000;

/// The upload form and the past reconciliations.
#[derive(Template)]
#[template(path = "reconcile.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<q::StoredReport>,
    error: Option<String>,
    limit_mib: usize,
}

/// One stored report.
#[derive(Template)]
#[template(path = "reconcile_report.html")]
struct ReportPage {
    layout: Layout,
    head: q::StoredReport,
    encoding: String,
    delimiter: String,
    period: String,
    matched: String,
    sections: Vec<Section>,
    totals: Vec<TotalsView>,
    total_line: Option<String>,
    shown_all: bool,
}

/// The differences of one kind.
struct Section {
    title: &'static str,
    bad: bool,
    count: u64,
    rows: Vec<RowView>,
}

/// A difference as shown.
struct RowView {
    line: String,
    txn_id: String,
    /// Where the `txn_id` links: the request log for a payment missing here, the
    /// transaction page for one that is here.
    href: Option<String>,
    registry: String,
    here: String,
    reason: String,
}

/// A totals row.
struct TotalsView {
    day: String,
    registry_count: u64,
    registry_sum: String,
    here_count: u64,
    here_sum: String,
    difference: String,
    differs: bool,
}

impl From<&Totals> for TotalsView {
    fn from(t: &Totals) -> TotalsView {
        TotalsView {
            day: t.day.map_or_else(|| "All".to_owned(), |d| d.to_string()),
            registry_count: t.registry_count,
            registry_sum: money(t.registry_minor),
            here_count: t.here_count,
            here_sum: money(t.here_minor),
            difference: money(t.difference()),
            differs: t.difference() != 0 || t.registry_count != t.here_count,
        }
    }
}

fn row_view(d: &Difference) -> RowView {
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let href = match (d.kind, d.payment_id, &d.txn_id) {
        (_, Some(id), _) => Some(format!("/admin/transactions/{id}")),
        (Some(Kind::MissingHere), None, Some(t)) => Some(format!("/admin/log?txn={}", enc(t))),
        _ => None,
    };
    let side = |date: &Option<String>, account: &Option<String>, minor: Option<i64>| {
        [date.clone(), account.clone(), minor.map(money)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ")
    };
    RowView {
        line: d.line.map(|l| l.to_string()).unwrap_or_default(),
        txn_id: d.txn_id.clone().unwrap_or_default(),
        href,
        registry: side(&d.registry_date, &d.registry_account, d.registry_minor),
        here: side(&d.here_date, &d.here_account, d.here_minor),
        reason: d.reason.clone(),
    }
}

async fn list_page(
    db: &Db,
    settings: &Settings,
    session: &Session,
    error: Option<String>,
) -> Result<ListPage, AdminError> {
    let rows = db.read(|c| q::list(c, LISTED)).await?;
    Ok(ListPage {
        layout: Layout::new(
            "Reconciliation",
            session,
            "reconcile",
            &super::view::Fmt::new(settings),
        ),
        rows,
        error,
        limit_mib: settings.reconcile_max_upload / (1024 * 1024),
    })
}

/// `GET /admin/reconcile`: the upload form and the past reconciliations, newest first.
pub async fn list(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    Extension(session): Extension<Session>,
) -> Result<Response, AdminError> {
    let page = list_page(&db, &settings, &session, None).await?;
    Ok(render(StatusCode::OK, &page))
}

/// `POST /admin/reconcile` (multipart, the CSRF token in the action URL): reconciles the
/// uploaded registry, stores the report and shows it. A file that is not a registry, or is
/// over `reconcile_max_upload_mib`, gets the form again with one message; nothing is stored.
pub async fn upload(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    State(server): State<Arc<ServerSettings>>,
    Extension(session): Extension<Session>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    mut form: Multipart,
) -> Result<Response, AdminError> {
    let limit = settings.reconcile_max_upload;
    let refuse = async |status: StatusCode, message: String| -> Result<Response, AdminError> {
        tracing::warn!(user = %session.username, %message, "registry upload refused");
        let page = list_page(&db, &settings, &session, Some(message)).await?;
        Ok(render(status, &page))
    };
    let too_big = format!(
        "The file is larger than {} MiB (reconcile_max_upload_mib).",
        limit / (1024 * 1024)
    );
    let mut upload = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_big).await;
            }
            Err(e) => {
                return refuse(StatusCode::BAD_REQUEST, format!("The upload failed: {e}")).await;
            }
        };
        if field.name() != Some("registry") {
            continue;
        }
        let name = field.file_name().unwrap_or_default().to_owned();
        let mut field = field;
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > limit {
                        return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_big).await;
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_big).await;
                }
                Err(e) => {
                    return refuse(StatusCode::BAD_REQUEST, format!("The upload failed: {e}"))
                        .await;
                }
            }
        }
        upload = Some((name, bytes));
    }
    let Some((name, bytes)) = upload.filter(|(n, _)| !n.is_empty()) else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a registry file to upload.".into(),
        )
        .await;
    };
    let columns = settings.reconcile_columns.clone();
    match reconcile::run(&db, Source::Bytes(bytes), name.clone(), columns).await {
        Ok((id, _, report)) => {
            tracing::info!(id, user = %session.username, file = %name, verdict = %report.summary.verdict(), "registry reconciled");
            let detail =
                super::audit::reconcile_detail(id, &name, report.summary.difference_count());
            super::audit::record(&db, &server, &session, peer, &headers, "reconcile", detail)
                .await?;
            Ok(Redirect::to(&format!("/admin/reconcile/{id}")).into_response())
        }
        Err(RunError::NotARegistry(e)) => {
            refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("“{name}” is not a payment registry: {e}."),
            )
            .await
        }
        Err(RunError::Db(e)) => Err(e.into()),
        Err(RunError::Io(e)) => Err(crate::db::DbError::Commit(e.to_string()).into()),
    }
}

/// `GET /admin/reconcile/{id}`: one stored report, missing-here first.
pub async fn get(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found_page(&session));
    };
    let Some((head, report)) = db.read(move |c| q::get(c, id, Some(SHOWN))).await? else {
        return Ok(not_found_page(&session));
    };
    let s = &report.summary;
    let sections = [
        Kind::MissingHere,
        Kind::MissingFromRegistry,
        Kind::Different,
        Kind::Malformed,
        Kind::Total,
    ]
    .into_iter()
    .filter(|k| s.count(*k) > 0)
    .map(|k| Section {
        title: k.title(),
        bad: k == Kind::MissingHere,
        count: s.count(k),
        rows: report
            .differences
            .iter()
            .filter(|d| d.kind == Some(k))
            .map(row_view)
            .collect(),
    })
    .collect();
    let page = ReportPage {
        layout: Layout::new(
            format!("Reconciliation {id}"),
            &session,
            "reconcile",
            &super::view::Fmt::new(&settings),
        ),
        encoding: s.encoding.clone(),
        delimiter: s.delimiter.clone(),
        period: reconcile::render::period(s),
        matched: format!("{} payments, {}", s.matched_count, money(s.matched_minor)),
        sections,
        totals: s
            .days
            .iter()
            .chain([&s.total])
            .map(TotalsView::from)
            .collect(),
        total_line: s.total_line_minor.map(money),
        shown_all: s.difference_count() <= SHOWN as u64,
        head,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /admin/reconcile/{id}/csv`: the report with every differing line, as CSV.
pub async fn csv(
    State(db): State<Db>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found_page(&session));
    };
    let Some((head, report)) = db.read(move |c| q::get(c, id, None)).await? else {
        return Ok(not_found_page(&session));
    };
    let body = reconcile::render::csv(&report)
        .map_err(|e| AdminError::Db(crate::db::DbError::Commit(e.to_string())))?;
    let file = format!("reconciliation-{}.csv", head.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}
