//! `/payment`'s door: the allow-list, Basic auth and the declared body size are decided from
//! the request head, before a byte of the body is read. A refused request (403, 401) is logged
//! as a bounded summary (method, path, address, at most [`REFUSED_HEADERS_CAP`] bytes of
//! headers, no body), and only up to a budget per address and per minute
//! ([`RefusalBudget`]): beyond it refusals are counted, not stored. Whoever is refused does
//! not decide how much the gateway writes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::db::{self, http_log};
use crate::http::client_ip;
use crate::http::limits::Limits;
use crate::http::request_log::PaymentInfo;
use crate::qiwi::handler::QiwiState;

/// Largest request body `/payment` takes: a declared `Content-Length` above it is answered
/// 413 before the body is read. A real QIWI request is a few hundred bytes.
pub const MAX_BODY: u64 = 64 * 1024;
/// Most bytes of headers stored with a refused request's log row.
pub const REFUSED_HEADERS_CAP: usize = 1024;
/// Most bytes of path and query stored with a refused request's log row.
const REFUSED_URL_CAP: usize = 512;
/// Refused requests stored per address (IPv6: per /64) per [`REFUSAL_WINDOW`].
pub const REFUSED_ROWS_PER_ADDRESS: u32 = 10;
/// Refused requests stored from all addresses together per [`REFUSAL_WINDOW`]: the bound a
/// botnet meets (60 rows of at most ~1.6 KiB a minute: under 140 MB a day).
pub const REFUSED_ROWS_TOTAL: u32 = 60;
/// The window of both budgets.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// Why the head alone decided the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The address is not in `qiwi_allowed_ips`.
    Forbidden,
    /// Basic auth is configured and the request does not carry it.
    Unauthorized,
    /// Authenticated, but the declared body is over [`MAX_BODY`].
    TooLarge,
}

/// The middleware on `/payment` (a route layer: it runs only for that route).
pub async fn layer(
    State(qiwi): State<QiwiState>,
    State(limits): State<Arc<Limits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let ip = client_ip::client_ip(peer.ip(), req.headers(), &qiwi.server.trusted_proxies);
    let refusal = if !client_ip::allowed(&qiwi.settings.allowed_ips, ip) {
        Some(Refusal::Forbidden)
    } else if let Some(auth) = &qiwi.settings.http_auth
        && !crate::http::basic_auth_ok(req.headers(), auth)
    {
        Some(Refusal::Unauthorized)
    } else if declared_length(req.headers()).is_some_and(|n| n > MAX_BODY) {
        Some(Refusal::TooLarge)
    } else {
        None
    };
    let Some(refusal) = refusal else {
        return next.run(req).await;
    };
    let (status, text) = match refusal {
        Refusal::Forbidden => (StatusCode::FORBIDDEN, "forbidden\n"),
        Refusal::Unauthorized => (StatusCode::UNAUTHORIZED, "authentication required\n"),
        Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
    };
    // An authenticated request is logged like any other (headers capped, no body); a refused
    // one only within the budget.
    let store = match refusal {
        Refusal::TooLarge => true,
        Refusal::Forbidden | Refusal::Unauthorized => {
            match limits.refusals.admit(ip, Instant::now()) {
                Admit::Store { not_stored_before } => {
                    if not_stored_before > 0 {
                        tracing::warn!(
                            not_stored = not_stored_before,
                            "refused /payment requests over the log budget in the last \
                             window were counted, not stored"
                        );
                    }
                    if refusal == Refusal::Forbidden {
                        tracing::warn!(%ip, "refused /payment: the address is not in qiwi_allowed_ips");
                    }
                    true
                }
                Admit::Count { first } => {
                    if first {
                        tracing::warn!(
                            %ip,
                            "refused /payment requests from this address are over the log \
                             budget: counting them without storing until the minute is over"
                        );
                    }
                    false
                }
            }
        }
    };
    if store {
        let headers_cap = match refusal {
            Refusal::TooLarge => crate::http::STORED_HEADERS_CAP,
            Refusal::Forbidden | Refusal::Unauthorized => REFUSED_HEADERS_CAP,
        };
        let url = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path(), |pq| pq.as_str());
        let entry = http_log::LogEntry {
            ip: ip.to_string(),
            url: cut(url, REFUSED_URL_CAP),
            method: cut(req.method().as_str(), 16),
            headers: crate::http::headers_json_capped(req.headers(), headers_cap),
            body: String::new(),
            created_at: db::now_text(),
            status: status.as_u16(),
            response: text.to_owned(),
            txn_id: None,
            result: None,
        };
        let started = Instant::now();
        match qiwi
            .db
            .writer()
            .write(move |c| http_log::insert(c, &entry))
            .await
        {
            Ok(_) => qiwi.metrics.db_write(started.elapsed()),
            Err(e) => tracing::error!(error = %e, "could not log a refused /payment request"),
        }
    }
    // The body is never read: dropping the request lets hyper close the connection.
    drop(req);
    let mut resp = (status, Body::from(text)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if refusal == Refusal::Unauthorized {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"qiwi-gateway\", charset=\"UTF-8\""),
        );
    }
    // Counted in the request metrics by `http::request_log`, like the handler's answers.
    resp.extensions_mut().insert(PaymentInfo::default());
    resp
}

/// The declared `Content-Length`, when there is one that parses.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What to do with one refused request's log row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Store it; `not_stored_before` refusals of the previous window were only counted.
    Store {
        /// Refusals counted without a row in the window that just ended.
        not_stored_before: u64,
    },
    /// Over budget: count it only. `first` is set on the first such refusal of an address in
    /// a window, so the log says so once, not once per request.
    Count {
        /// The first refusal of this address not stored in this window.
        first: bool,
    },
}

/// The log budget of refused requests: [`REFUSED_ROWS_PER_ADDRESS`] per address (grouped by
/// [`client_ip::group`]) and [`REFUSED_ROWS_TOTAL`] in all per fixed [`REFUSAL_WINDOW`].
/// Memory is bounded too: only addresses that got a row have an entry, at most
/// [`REFUSED_ROWS_TOTAL`] of them. The clock is a parameter so tests need not sleep.
#[derive(Debug)]
pub struct RefusalBudget {
    inner: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    per_address: HashMap<IpAddr, (u32, bool)>,
    stored: u32,
    not_stored: u64,
}

impl Default for RefusalBudget {
    fn default() -> Self {
        RefusalBudget {
            inner: Mutex::new(Window {
                started: None,
                per_address: HashMap::new(),
                stored: 0,
                not_stored: 0,
            }),
        }
    }
}

impl RefusalBudget {
    /// Decides whether a refusal of `ip` at `now` gets a log row.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admit {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut not_stored_before = 0;
        if w.started
            .is_none_or(|s| now.saturating_duration_since(s) >= REFUSAL_WINDOW)
        {
            not_stored_before = w.not_stored;
            *w = Window {
                started: Some(now),
                per_address: HashMap::new(),
                stored: 0,
                not_stored: 0,
            };
        }
        let key = client_ip::group(ip);
        let total_full = w.stored >= REFUSED_ROWS_TOTAL;
        let entry = w.per_address.get(&key).copied();
        match entry {
            Some((n, _)) if n < REFUSED_ROWS_PER_ADDRESS && !total_full => {
                w.per_address.insert(key, (n + 1, false));
            }
            None if !total_full => {
                w.per_address.insert(key, (1, false));
            }
            Some((n, warned)) => {
                w.not_stored += 1;
                w.per_address.insert(key, (n, true));
                return Admit::Count { first: !warned };
            }
            None => {
                // The total is used up: no entry, so memory stays bounded.
                w.not_stored += 1;
                return Admit::Count { first: false };
            }
        }
        w.stored += 1;
        Admit::Store { not_stored_before }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_stored_up_to_the_budget_then_counted() {
        let b = RefusalBudget::default();
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:0:1:ffff::2".parse().unwrap();
        for i in 0..REFUSED_ROWS_PER_ADDRESS {
            let ip = if i % 2 == 0 { a } else { same_64 };
            assert!(matches!(b.admit(ip, t0), Admit::Store { .. }));
        }
        assert_eq!(b.admit(same_64, t0), Admit::Count { first: true });
        assert_eq!(b.admit(a, t0), Admit::Count { first: false });
        // Other addresses store until the total is used up.
        let mut stored = REFUSED_ROWS_PER_ADDRESS;
        for i in 0..1000u32 {
            let ip = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
            if matches!(b.admit(ip, t0), Admit::Store { .. }) {
                stored += 1;
            }
        }
        assert_eq!(stored, REFUSED_ROWS_TOTAL);
        assert!(b.inner.lock().unwrap().per_address.len() <= REFUSED_ROWS_TOTAL as usize);
        // A new window stores again and reports what was only counted.
        let later = t0 + REFUSAL_WINDOW;
        assert_eq!(
            b.admit(a, later),
            Admit::Store {
                not_stored_before: 2 + 1000
                    - u64::from(REFUSED_ROWS_TOTAL - REFUSED_ROWS_PER_ADDRESS)
            }
        );
    }
}
