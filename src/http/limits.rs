//! What one client can make the server hold: the head size cap (431), the request deadline (a
//! body that is still arriving when it passes fails to read), 413 on a declared body over the
//! cap before it is read, the connection limit and the per-address cap (both logged and counted
//! when hit), and the file-descriptor limit raised at start.
//! The header read timeout and the read buffer that bounds a head's memory are hyper's, set
//! where the server is built (`app::start`). Every figure is listed in docs/operations.md,
//! "Limits".

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::PollSemaphore;

use super::ServerSettings;
use super::client_ip;
use crate::http::payment_guard::{self, MAX_BODY, RefusalBudget};
use crate::ops::metrics::Metrics;

/// Most bytes of a request head (request line and headers, [`head_len`]); a larger head is
/// answered 431. Real requests carry under 2 KiB.
///
/// Enforced twice, because hyper's `max_buf_size` (set to this) bounds when hyper stops
/// reading an incomplete head, not the head: it reads into its buffer's whole spare capacity,
/// so a head arriving in one read is parsed and served up to that capacity (measured: 49,000
/// bytes served, 49,500 answered 431 by hyper). Heads that arrive in pieces are cut at this
/// size by hyper (431); the rest are measured by [`layer`] and answered 431 there.
pub const MAX_HEAD: usize = 32 * 1024;
/// Most header fields in one request (hyper's own default is 100).
pub const MAX_HEADERS: usize = 64;
/// How long after the request deadline a handler may still take to answer (a body cut at
/// the deadline is answered and logged in this time) before the request is answered 408.
pub const ANSWER_GRACE: Duration = Duration::from_secs(5);
/// File descriptors kept for the database, the TLS files and the outbound clients when the
/// connection limit is fitted under the process's file-descriptor limit.
pub const RESERVED_FDS: u64 = 64;

/// Shared state of the limits (the refused-request log budget).
#[derive(Debug, Default)]
pub struct Limits {
    /// How many refused `/payment` requests get a log row.
    pub refusals: RefusalBudget,
}

/// The middleware on every route: a declared body over [`MAX_BODY`] is answered 413 before
/// it is read (`/payment` decides that itself, after auth, so the request is logged); a body
/// is readable only until `http_request_timeout_secs` after the head arrived; a request still
/// unanswered [`ANSWER_GRACE`] later is answered 408.
pub async fn layer(
    State(server): State<Arc<ServerSettings>>,
    req: Request,
    next: Next,
) -> Response {
    // Before anything else, `/payment`'s log included: a head over the cap stores nothing.
    if head_len(&req) > MAX_HEAD {
        let mut resp = (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large\n",
        )
            .into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    let payment = req.uri().path().starts_with("/payment");
    if !payment && payment_guard::declared_length(req.headers()).is_some_and(|n| n > MAX_BODY) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
    }
    let timeout = server.request_timeout;
    let deadline = Instant::now() + timeout;
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Body::new(DeadlineBody::new(body, deadline)));
    match tokio::time::timeout_at(deadline + ANSWER_GRACE, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(?timeout, "request not answered within its deadline: 408");
            let mut resp = (StatusCode::REQUEST_TIMEOUT, "request timeout\n").into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

/// The size of `req`'s head as an ordinary client sends it (RFC 9112 sections 3 and 5): the
/// request line `METHOD target HTTP/1.1` and one `Name: value` line per field, each with its
/// CRLF, and the empty line. Counted from the parsed head, so optional white space a client
/// added around a value is not counted (hyper's own read cap bounds that).
pub fn head_len(req: &Request) -> usize {
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    // "METHOD SP target SP HTTP/1.1 CRLF" + fields + CRLF
    req.method().as_str().len() + 1 + target + 1 + 8 + 2 + fields + 2
}

/// The request deadline passed before the body was read in full.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within the request deadline")]
pub struct BodyDeadline;

/// A request body that fails with [`BodyDeadline`] once its deadline passes, however the
/// bytes trickle in: a slow sender cannot hold a handler longer than the deadline.
pub struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    /// `inner`, readable until `deadline`.
    pub fn new(inner: Body, deadline: Instant) -> DeadlineBody {
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(BodyDeadline.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft limit of open files to the hard limit (Linux/Unix; elsewhere nothing)
/// and returns the soft limit now in force, when it is known. Each connection is a file
/// descriptor: a distribution's default soft limit of 1,024 would otherwise cap the server
/// well below its connection limit.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-files limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// The connection limit that fits: `configured`, or less when the open-files limit
/// (`fd_limit`) leaves room for fewer after [`RESERVED_FDS`].
pub fn fit_connections(configured: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(fds) => {
            let room = usize::try_from(fds.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
            configured.min(room).max(1)
        }
        None => configured,
    }
}

/// How often at most the log says that a limit was hit: once a minute for each address (the
/// per-address cap), and once a minute for the connection limit.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// Who holds the open connections: a count per address block ([`client_ip::group`]: an IPv4
/// address, an IPv6 address's /64), the per-address cap, and when the log last spoke of a
/// limit. Only blocks with an open connection (or warned about in the last [`WARN_EVERY`])
/// are kept, so its memory is bounded by the connection limit.
#[derive(Debug)]
pub struct Holders {
    per_ip: usize,
    total: usize,
    exempt: Vec<IpNet>,
    metrics: Arc<Metrics>,
    state: Mutex<HoldersState>,
}

#[derive(Debug, Default)]
struct HoldersState {
    open: HashMap<IpAddr, Holder>,
    total_warned: Option<Instant>,
    swept: Option<Instant>,
}

#[derive(Debug, Default)]
struct Holder {
    open: usize,
    warned: Option<Instant>,
}

impl Holders {
    /// At most `per_ip` connections per address block (0: no cap), `total` the connection
    /// limit (for the log line). Peers in `exempt` (the trusted proxies, which carry every
    /// client behind them) are counted but never capped. Refusals and open connections are
    /// counted in `metrics`.
    pub fn new(per_ip: usize, total: usize, exempt: Vec<IpNet>, metrics: Arc<Metrics>) -> Holders {
        Holders {
            per_ip,
            total,
            exempt,
            metrics,
            state: Mutex::new(HoldersState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HoldersState> {
        // A panic while holding the lock leaves counts that are still counts.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a connection from `peer`, or `None` when its block already holds
    /// the cap (counted, and logged at most once per block and [`WARN_EVERY`]).
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Place> {
        let block = client_ip::group(peer);
        let cap = if client_ip::contains(&self.exempt, peer) {
            0
        } else {
            self.per_ip
        };
        let taken = self.lock().take(block, cap, Instant::now());
        match taken {
            Taken::Admitted => {
                self.metrics.connection_opened();
                Some(Place {
                    holders: self.clone(),
                    block,
                })
            }
            Taken::Refused { warn } => {
                self.metrics.connection_limit_hit("per_ip");
                if warn {
                    tracing::warn!(
                        address = %block,
                        limit = self.per_ip,
                        "connection closed: this address holds http_max_connections_per_ip \
                         connections already (said at most once a minute per address)"
                    );
                }
                None
            }
        }
    }

    /// Notes that every connection slot is taken (counted; logged at most once per
    /// [`WARN_EVERY`], naming the block that holds most of them).
    fn full(&self) {
        self.metrics.connection_limit_hit("total");
        let now = Instant::now();
        let mut state = self.lock();
        if state.total_warned.is_some_and(|t| now - t < WARN_EVERY) {
            return;
        }
        state.total_warned = Some(now);
        let top = state
            .open
            .iter()
            .max_by_key(|(_, h)| h.open)
            .map(|(ip, h)| (*ip, h.open));
        drop(state);
        let (address, held) = top.map_or((None, 0), |(ip, n)| (Some(ip), n));
        tracing::warn!(
            limit = self.total,
            top_address = address.map(tracing::field::display),
            top_address_connections = held,
            "connection limit reached: new connections wait in the kernel's queue until one \
             closes (http_max_connections; said at most once a minute)"
        );
    }

    fn release(&self, block: IpAddr) {
        self.lock().give_back(block);
        self.metrics.connection_closed();
    }

    /// How many connections `peer`'s block holds open now.
    pub fn open(&self, peer: IpAddr) -> usize {
        self.lock()
            .open
            .get(&client_ip::group(peer))
            .map_or(0, |h| h.open)
    }
}

/// What [`HoldersState::take`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Taken {
    Admitted,
    /// Over the cap; `warn`: the first refusal of this block in [`WARN_EVERY`].
    Refused {
        warn: bool,
    },
}

impl HoldersState {
    /// Counts a connection of `block` unless it holds `cap` (0: no cap) already.
    fn take(&mut self, block: IpAddr, cap: usize, now: Instant) -> Taken {
        self.sweep(now);
        let holder = self.open.entry(block).or_default();
        if cap > 0 && holder.open >= cap {
            let warn = holder.warned.is_none_or(|t| now - t >= WARN_EVERY);
            if warn {
                holder.warned = Some(now);
            }
            return Taken::Refused { warn };
        }
        holder.open += 1;
        Taken::Admitted
    }

    /// Gives back a place of `block`; a block left with none is forgotten, unless it was
    /// warned about (then [`HoldersState::sweep`] forgets it).
    fn give_back(&mut self, block: IpAddr) {
        if let Some(holder) = self.open.get_mut(&block) {
            holder.open = holder.open.saturating_sub(1);
            if holder.open == 0 && holder.warned.is_none() {
                self.open.remove(&block);
            }
        }
    }

    /// Forgets, once a minute, the blocks with no open connection whose warning is over a
    /// minute old.
    fn sweep(&mut self, now: Instant) {
        if self.swept.is_some_and(|t| now - t < WARN_EVERY) {
            return;
        }
        self.swept = Some(now);
        self.open
            .retain(|_, h| h.open > 0 || h.warned.is_some_and(|t| now - t < WARN_EVERY));
    }
}

/// One connection's place in [`Holders`], given back when it is dropped.
#[derive(Debug)]
struct Place {
    holders: Arc<Holders>,
    block: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.holders.release(self.block);
    }
}

/// A connection closed at once because its address holds the per-address cap.
#[derive(Debug, thiserror::Error)]
#[error("this address holds http_max_connections_per_ip connections already")]
pub struct OverCap;

/// A make-service that serves at most `limit` connections at once, and at most the
/// per-address cap of [`Holders`] from one address block. Over the limit, the connection
/// axum-server has just accepted waits for a free permit before it is served (axum-server
/// accepts, then asks the make-service to be ready), and the ones after it wait in the
/// kernel's listen queue, holding no descriptor of ours. Over the per-address cap, the
/// connection is accepted and closed at once, before a byte is read: its make-service call
/// fails with [`OverCap`], on which axum-server drops the stream. The permit and the place
/// live in the connection's service and are returned when hyper drops it, that is when the
/// connection closes.
pub struct ConnectionLimit<M> {
    inner: M,
    permits: PollSemaphore,
    permit: Option<OwnedSemaphorePermit>,
    holders: Arc<Holders>,
    waiting: bool,
}

impl<M> ConnectionLimit<M> {
    /// `inner`, serving at most `limit` connections at once, and per address what `holders`
    /// allows.
    pub fn new(inner: M, limit: usize, holders: Arc<Holders>) -> ConnectionLimit<M> {
        ConnectionLimit {
            inner,
            permits: PollSemaphore::new(Arc::new(Semaphore::new(limit.max(1)))),
            permit: None,
            holders,
            waiting: false,
        }
    }
}

impl<M> tower::Service<SocketAddr> for ConnectionLimit<M>
where
    M: tower::Service<SocketAddr>,
    M::Future: Send + 'static,
    M::Response: Send + 'static,
    M::Error: Into<axum::BoxError>,
{
    type Response = Limited<M::Response>;
    type Error = axum::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, axum::BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), axum::BoxError>> {
        if self.permit.is_none() {
            // The semaphore is never closed: `None` cannot happen, and would only mean
            // serving this one connection without a permit.
            match self.permits.poll_acquire(cx) {
                Poll::Ready(permit) => {
                    self.permit = permit;
                    self.waiting = false;
                }
                Poll::Pending => {
                    if !self.waiting {
                        self.waiting = true;
                        self.holders.full();
                    }
                    return Poll::Pending;
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, peer: SocketAddr) -> Self::Future {
        let permit = self.permit.take();
        let Some(place) = self.holders.admit(peer.ip()) else {
            // Dropping the permit frees the slot at once; the stream is dropped (closed)
            // by axum-server on the error.
            drop(permit);
            return Box::pin(std::future::ready(Err(OverCap.into())));
        };
        let made = self.inner.call(peer);
        Box::pin(async move {
            let inner = made.await.map_err(Into::into)?;
            Ok(Limited {
                inner,
                _held: Arc::new((permit, place)),
            })
        })
    }
}

/// A connection's service holding its permit of [`ConnectionLimit`] and its place in
/// [`Holders`].
#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    _held: Arc<(Option<OwnedSemaphorePermit>, Place)>,
}

impl<S, R> tower::Service<R> for Limited<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_fits_under_the_fd_limit() {
        assert_eq!(fit_connections(1024, None), 1024);
        assert_eq!(fit_connections(1024, Some(1_048_576)), 1024);
        assert_eq!(
            fit_connections(1024, Some(256)),
            256 - RESERVED_FDS as usize
        );
        assert_eq!(fit_connections(1024, Some(10)), 1);
    }

    #[test]
    fn the_per_address_cap_counts_blocks_warns_once_a_minute_and_forgets_closed_ones() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mut state = HoldersState::default();
        let now = Instant::now();
        let a = client_ip::group(ip("2001:db8:1:2::1"));
        // Another address of the same /64 is the same block.
        let a2 = client_ip::group(ip("2001:db8:1:2:ffff::9"));
        let b = ip("203.0.113.9");
        assert_eq!(state.take(a, 2, now), Taken::Admitted);
        assert_eq!(state.take(a2, 2, now), Taken::Admitted);
        assert_eq!(state.take(a, 2, now), Taken::Refused { warn: true });
        assert_eq!(state.take(a2, 2, now), Taken::Refused { warn: false });
        // Another block is not affected; cap 0 admits all.
        assert_eq!(state.take(b, 2, now), Taken::Admitted);
        for _ in 0..5 {
            assert_eq!(state.take(b, 0, now), Taken::Admitted);
        }
        assert_eq!(state.open[&b].open, 6);
        for _ in 0..6 {
            state.give_back(b);
        }
        assert!(
            !state.open.contains_key(&b),
            "a block with nothing open is forgotten"
        );
        // Within the minute, still once; after it, warned again.
        let later = now + WARN_EVERY - Duration::from_secs(1);
        assert_eq!(state.take(a, 2, later), Taken::Refused { warn: false });
        let later = now + WARN_EVERY;
        assert_eq!(state.take(a, 2, later), Taken::Refused { warn: true });
        // Closed and warned: kept until a sweep a minute after the warning.
        state.give_back(a);
        state.give_back(a);
        assert!(state.open.contains_key(&a));
        state.sweep(later + WARN_EVERY);
        assert!(state.open.is_empty(), "{:?}", state.open);
    }

    #[tokio::test]
    async fn a_body_still_arriving_at_the_deadline_fails() {
        use http_body_util::BodyExt;
        let (mut tx, body) =
            http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(1);
        let _ = tx.send_data(Bytes::from_static(b"a=1")).await;
        let deadline = Instant::now() + Duration::from_millis(50);
        let body = DeadlineBody::new(Body::new(body), deadline);
        // `tx` is kept open: the body never ends on its own.
        let err = body.collect().await.err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("the request body was not received within the request deadline")
        );
        drop(tx);
    }
}
