//! The QIWI provider protocol: parsing requests into domain types, result codes, the XML
//! answer, the account check against the merchant's backend, the commands themselves
//! (`service`, axum-free) and the thin `/payment` handler.

mod account;
mod amount;
mod answer;
pub mod backend;
pub mod check;
mod code;
pub mod handler;
mod request;
pub mod service;
mod settings;
pub mod txn_id;

pub use account::{Account, DEFAULT_ACCOUNT_PATTERN, anchored_pattern};
pub use amount::{Amount, AmountError};
pub use answer::{Answer, Field, ReadBack, read as read_answer};
pub use code::{Rejection, ResultCode};
pub use request::{Command, Draft, Params, Request, Rules, TxnDate, parse_params};
pub use settings::Settings;
pub use txn_id::TxnId;
