//! Integration tests: the real router served on 127.0.0.1:0 with its own temporary database,
//! real HTTP peers (local axum servers playing the merchant's backend).

#![allow(clippy::unwrap_used)] // a test/bench may unwrap: a panic is its failure report

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
mod protocol;
mod reconcile;
mod routes;
mod webhook;
