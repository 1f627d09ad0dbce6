//! qiwi-gateway: takes payments from QIWI terminals (the provider protocol), stores them in
//! SQLite and forwards them to the merchant's backend.

pub mod admin;
pub mod app;
pub mod config;
pub mod db;
pub mod http;
pub mod import;
pub mod ops;
pub mod outbound;
pub mod qiwi;
pub mod reconcile;
pub mod secret;
pub mod state;
pub mod webhook;

/// The `User-Agent` of every outbound call.
pub const USER_AGENT: &str = concat!("qiwi-gateway/", env!("CARGO_PKG_VERSION"));
