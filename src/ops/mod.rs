//! Running the gateway for years: health and readiness, metrics, housekeeping, TLS.

pub mod cli;
pub mod health;
pub mod housekeeping;
pub mod lock;
pub mod metrics;
pub mod redact;
pub mod startup;
pub mod tls;

pub use metrics::Metrics;
