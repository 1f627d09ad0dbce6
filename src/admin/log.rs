//! `/admin/log`: every request that reached `/payment`, filtered and paged, and one request
//! with its headers, body and answer.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::session::Session;
use super::view::{self, FormQuery, PageQuery, Pager};
use super::{AdminError, Layout, Settings, not_found_page, render};
use crate::db::http_log::{self as q, LogFilter, LogRow};
use crate::db::pager::Page;
use crate::db::{Db, transactions};

/// Longest text searched for.
const MAX_SEARCH: usize = 200;

/// The filter form of the request log (`?method=&ip=&status=&result=&q=&txn=&from=&to=`) as
/// typed.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct LogForm {
    method: String,
    ip: String,
    status: String,
    result: String,
    #[serde(rename = "q")]
    text: String,
    txn: String,
    from: String,
    to: String,
}

impl LogForm {
    fn query(&self) -> String {
        view::encode_query(&[
            ("method", &self.method),
            ("ip", &self.ip),
            ("status", &self.status),
            ("result", &self.result),
            ("q", &self.text),
            ("txn", &self.txn),
            ("from", &self.from),
            ("to", &self.to),
        ])
    }
}

fn parse_filter(mut form: LogForm, zone: &view::Fmt) -> (LogForm, LogFilter, Vec<String>) {
    form.method = form.method.to_ascii_uppercase();
    let mut errors = Vec::new();
    let status = (!form.status.is_empty())
        .then(|| match form.status.parse::<i64>() {
            Ok(s) if (100..=599).contains(&s) => Some(s),
            _ => {
                errors.push("“Status” is not an HTTP status like 200 or 401.".to_owned());
                None
            }
        })
        .flatten();
    let result = (!form.result.is_empty())
        .then(|| match form.result.parse::<i64>() {
            Ok(r) if (0..=999).contains(&r) => Some(r),
            _ => {
                errors.push("“Result” is not a protocol result code like 0 or 300.".to_owned());
                None
            }
        })
        .flatten();
    if form.text.chars().count() > MAX_SEARCH {
        errors.push(format!(
            "The search text is longer than {MAX_SEARCH} characters."
        ));
    }
    let (from, until) = view::time_range(
        Some(&form.from).filter(|s| !s.is_empty()),
        Some(&form.to).filter(|s| !s.is_empty()),
        zone,
        &mut errors,
    );
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let filter = LogFilter {
        method: nonempty(&form.method),
        ip: nonempty(&form.ip),
        status,
        result,
        txn_id: nonempty(&form.txn),
        text: nonempty(&form.text),
        from,
        until,
    };
    (form, filter, errors)
}

/// A request in a list.
struct LogView {
    href: String,
    id: i64,
    created_at: String,
    ip: String,
    method: String,
    url: String,
    status: i64,
    status_class: &'static str,
    result: String,
    result_class: &'static str,
    result_title: &'static str,
    txn_id: String,
}

impl LogView {
    fn new(l: LogRow, zone: &view::Fmt) -> LogView {
        LogView {
            href: format!("/admin/log/{}", l.id),
            id: l.id,
            created_at: zone.time(&l.created_at),
            ip: l.ip,
            method: l.method,
            url: l.url,
            status_class: view::http_class(l.status),
            status: l.status,
            result_class: l.result.map_or("muted", view::result_class),
            result_title: l.result.map_or("no protocol answer", view::result_meaning),
            result: l.result.map_or_else(|| "—".to_owned(), |c| c.to_string()),
            txn_id: l.txn_id.unwrap_or_default(),
        }
    }
}

/// The request log.
#[derive(Template)]
#[template(path = "log.html")]
pub struct LogPage {
    layout: Layout,
    form: LogForm,
    errors: Vec<String>,
    filtered: bool,
    rows: Vec<LogView>,
    pager: Pager,
}

/// `GET /admin/log`.
pub async fn list(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    Extension(session): Extension<Session>,
    FormQuery(form): FormQuery<LogForm>,
    FormQuery(at): FormQuery<PageQuery>,
) -> Result<Response, AdminError> {
    let zone = view::Fmt::new(&settings);
    let (form, filter, errors) = parse_filter(form, &zone);
    let cursor = at.cursor();
    let page = if errors.is_empty() {
        db.read_bulk(move |c| q::requests(c, &filter, cursor))
            .await?
    } else {
        Page {
            rows: Vec::new(),
            older: None,
            newer: None,
            budget_hit: false,
        }
    };
    let qs = form.query();
    let pager = Pager::new("/admin/log", &qs, &page, cursor);
    Ok(render(
        StatusCode::OK,
        &LogPage {
            layout: Layout::new("Request log", &session, "log", &zone),
            filtered: !qs.is_empty(),
            form,
            errors,
            rows: page
                .rows
                .into_iter()
                .map(|l| LogView::new(l, &zone))
                .collect(),
            pager,
        },
    ))
}

/// One request.
#[derive(Template)]
#[template(path = "request.html")]
pub struct RequestPage {
    layout: Layout,
    id: i64,
    created_at: String,
    ip: String,
    method: String,
    url: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: String,
    form: Vec<(String, String)>,
    status: i64,
    status_class: &'static str,
    result: Option<i64>,
    result_class: &'static str,
    result_meaning: &'static str,
    response: String,
    /// The display fields the answer carried (check and getInfo with a check backend).
    fields: Vec<crate::qiwi::Field>,
    txn_id: String,
    txn_href: Option<String>,
    txn_requests_href: String,
}

/// `GET /admin/log/{id}`.
pub async fn get(
    State(db): State<Db>,
    State(settings): State<Arc<Settings>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found_page(&session));
    };
    let found = db
        .read_bulk(move |c| {
            let Some(d) = q::request(c, id)? else {
                return Ok(None);
            };
            let txn = match &d.row.txn_id {
                Some(code) => transactions::transaction_id_by_code(c, code)?,
                None => None,
            };
            Ok(Some((d, txn)))
        })
        .await?;
    let Some((d, txn)) = found else {
        return Ok(not_found_page(&session));
    };
    let r = d.row;
    let query = r
        .url
        .split_once('?')
        .map(|(_, qs)| view::params(qs))
        .unwrap_or_default();
    let looks_like_form = !d.body.is_empty() && d.body.contains('=') && !d.body.contains('<');
    let mut headers = view::json_rows(&d.headers);
    headers.sort();
    let zone = view::Fmt::new(&settings);
    let page = RequestPage {
        layout: Layout::new(format!("Request #{}", r.id), &session, "log", &zone),
        id: r.id,
        created_at: zone.time(&r.created_at),
        ip: r.ip,
        method: r.method,
        query,
        headers,
        form: if looks_like_form {
            view::params(&d.body)
        } else {
            Vec::new()
        },
        body: d.body,
        status_class: view::http_class(r.status),
        status: r.status,
        result_class: r.result.map_or("muted", view::result_class),
        result_meaning: r.result.map_or("", view::result_meaning),
        result: r.result,
        fields: crate::qiwi::read_answer(&d.response)
            .map(|a| a.fields)
            .unwrap_or_default(),
        response: d.response,
        txn_href: txn.map(|id| format!("/admin/transactions/{id}")),
        txn_requests_href: r
            .txn_id
            .as_deref()
            .map(|t| format!("/admin/log?{}", view::encode_query(&[("txn", t)])))
            .unwrap_or_default(),
        txn_id: r.txn_id.unwrap_or_default(),
        url: r.url,
    };
    Ok(render(StatusCode::OK, &page))
}
