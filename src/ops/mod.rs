//! Running the gateway for years: health and readiness, metrics, housekeeping, TLS.

pub mod health;
pub mod metrics;

pub use metrics::Metrics;
