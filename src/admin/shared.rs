//! The admin UI's own shared state, a part of the application's state: kept apart from the
//! handlers so the state module can hold it without importing them.

use std::sync::Arc;

use super::{limiter, password};

/// CSV exports that may run at once; one more is answered 429 (issue 19.5: 16 parallel
/// exports held every read connection).
pub const EXPORTS_AT_ONCE: usize = 2;

/// The admin UI's shared state: credentials, resolved once, and the failed-login limiter.
#[derive(Clone, Default)]
pub struct AdminState {
    pub(super) credentials: Arc<tokio::sync::OnceCell<password::Credentials>>,
    /// Failed logins per address.
    pub limiter: Arc<limiter::LoginLimiter>,
    /// Slots of running CSV exports.
    pub exports: ExportSlots,
}

/// The slots of running CSV exports ([`EXPORTS_AT_ONCE`]).
#[derive(Clone)]
pub struct ExportSlots(pub(super) Arc<tokio::sync::Semaphore>);

impl Default for ExportSlots {
    fn default() -> Self {
        ExportSlots(Arc::new(tokio::sync::Semaphore::new(EXPORTS_AT_ONCE)))
    }
}
