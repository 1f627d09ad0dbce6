//! Integration tests: the real router served on 127.0.0.1:0 with its own temporary database,
//! real HTTP peers (local axum servers playing the merchant's backend).

mod admin;
mod check;
mod config;
mod display;
mod faults;
mod helpers;
mod hostile;
mod limits;
mod log;
mod ops;
mod payment;
mod routes;
mod webhook;
