//! Webhook delivery: every stored payment is POSTed to the merchant's backend
//! (`QIWI_WEBHOOK_URL`) until it answers 200 or 201.
//!
//! The outbox is `qiwi_transaction` itself: a payment is stored with its delivery due in the
//! same transaction, and a row stays due until an attempt's outcome is committed. So a restart
//! or a crash loses nothing; an attempt in flight at a crash is simply sent again (delivery is
//! at least once; receivers de-duplicate on `code` or `webhook-id`).
//!
//! - [`worker`]: finds due rows, attempts them with bounded concurrency, records each outcome.
//! - [`delivery`]: one HTTP attempt (payload, headers, how the answer is classified).
//! - [`backoff`]: the retry schedule, a pure function.
//! - [`signing`]: Standard Webhooks signatures.
//! - [`clock`]: time and jitter, injectable for tests.
//! - [`outbox`]: resends: making deliveries due again and waking the worker.
//!
//! Nothing here knows about axum; SQL lives in [`crate::db::outbox`].

pub mod backoff;
pub mod clock;
pub mod delivery;
pub mod outbox;
pub mod signing;
pub mod worker;

pub use outbox::Outbox;
pub use worker::{IDLE_RESCAN, Settings, Worker};

/// Why the worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// `WEBHOOK_SECRET` is unusable (the message never contains the secret).
    #[error("invalid `webhook_secret` (env WEBHOOK_SECRET): {0}")]
    Secret(signing::SecretError),
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(reqwest::Error),
    /// A worker was asked for without `QIWI_WEBHOOK_URL`.
    #[error("no webhook URL is configured (QIWI_WEBHOOK_URL)")]
    NoUrl,
}

// By hand, not `#[from]`: that would also make the cause the `source()`, and a printed chain
// would say it twice.
impl From<signing::SecretError> for WebhookError {
    fn from(e: signing::SecretError) -> WebhookError {
        WebhookError::Secret(e)
    }
}
