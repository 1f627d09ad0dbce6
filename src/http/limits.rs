//! What one client can make the server hold: the head size cap (431), the request deadline (a
//! body that is still arriving when it passes fails to read), 413 on a declared body over the
//! cap before it is read, the connection limit, and the file-descriptor limit raised at start.
//! The header read timeout and the read buffer that bounds a head's memory are hyper's, set
//! where the server is built (`app::start`). Every figure is listed in docs/operations.md,
//! "Limits".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::PollSemaphore;

use super::ServerSettings;
use crate::http::payment_guard::{self, MAX_BODY, RefusalBudget};

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

/// A make-service that serves at most `limit` connections at once: the server accepts the
/// next connection only once a permit is free (beyond that, connections wait in the kernel's
/// listen queue and hold no descriptor of ours). The permit lives in the connection's service
/// and is returned when hyper drops it, that is when the connection closes.
pub struct ConnectionLimit<M> {
    inner: M,
    permits: PollSemaphore,
    permit: Option<OwnedSemaphorePermit>,
}

impl<M> ConnectionLimit<M> {
    /// `inner`, serving at most `limit` connections at once.
    pub fn new(inner: M, limit: usize) -> ConnectionLimit<M> {
        ConnectionLimit {
            inner,
            permits: PollSemaphore::new(Arc::new(Semaphore::new(limit.max(1)))),
            permit: None,
        }
    }
}

impl<M, T> tower::Service<T> for ConnectionLimit<M>
where
    M: tower::Service<T>,
    M::Future: Send + 'static,
{
    type Response = Limited<M::Response>;
    type Error = M::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, M::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), M::Error>> {
        if self.permit.is_none() {
            // The semaphore is never closed: `None` cannot happen, and would only mean
            // serving this one connection without a permit.
            self.permit = ready!(self.permits.poll_acquire(cx));
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, target: T) -> Self::Future {
        let permit = self.permit.take().map(Arc::new);
        let made = self.inner.call(target);
        Box::pin(async move {
            made.await.map(|inner| Limited {
                inner,
                _permit: permit,
            })
        })
    }
}

/// A connection's service holding its permit of [`ConnectionLimit`].
#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    _permit: Option<Arc<OwnedSemaphorePermit>>,
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
