//! The outbound HTTP client policy: how the gateway calls out (the account check, the webhook,
//! the admin UI's test payment, `simulate`). reqwest only, no axum: the webhook and the check
//! backend use it without the inbound HTTP layer ([`crate::http`]).
//!
//! - [`client`]: calls to the merchant's backend: bounded, no redirects, no retries, our
//!   User-Agent, the trust store of [`trust`].
//! - [`loopback_client`]: the test payment's call to our own `/payment`.
//! - [`trust`]: the CA certificates outbound `https` calls trust.

pub mod trust;

use std::time::Duration;

/// The client for every call to the merchant's backend (account check, webhook): the whole
/// call, connection included, bounded by `timeout`; redirects never followed (a 3xx is an
/// answer, not a new address to send payment data to); no automatic retries (our own schedule
/// decides); our User-Agent; HTTP/1.1 only (never HTTP/2, even when a backend offers
/// it: reqwest's `http2` feature is there for `healthcheck`); the CA certificates of [`trust::Roots::system`]. Building does
/// not depend on the trust store: with no CA certificate at all it still succeeds, and each
/// `https` call then fails its handshake (a `tls` failure, retried like any other).
///
/// Errors: reqwest cannot build the client (TLS backend setup).
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    trust::apply(reqwest::Client::builder(), trust::Roots::system())
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .http1_only()
        .user_agent(crate::USER_AGENT)
        .build()
}

/// The client of the admin UI's test payment, which calls our own `/payment` over loopback:
/// the whole call bounded by `timeout`; no proxy; redirects never followed; the server's
/// certificate is not checked (it names the public host, not the loopback address the call
/// goes to), so this client must only ever call a loopback address; User-Agent
/// `qiwi-gateway/<version> (test payment)`.
///
/// Errors: reqwest cannot build the client (TLS backend setup).
pub fn loopback_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .tls_danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "qiwi-gateway/",
            env!("CARGO_PKG_VERSION"),
            " (test payment)"
        ))
        .build()
}
