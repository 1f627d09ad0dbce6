//! Mirrors `src/qiwi/mod.rs` for the pure files: same module names, same re-exports, so each
//! file compiles here unchanged.
#![allow(dead_code)]

#[path = "../../src/qiwi/account.rs"]
mod account;
#[path = "../../src/qiwi/amount.rs"]
mod amount;
#[path = "../../src/qiwi/answer.rs"]
mod answer;
#[path = "../../src/qiwi/backend.rs"]
pub mod backend;
#[path = "../../src/qiwi/code.rs"]
mod code;
#[path = "../../src/qiwi/request.rs"]
mod request;
#[path = "../../src/qiwi/txn_id.rs"]
pub mod txn_id;

pub use account::{Account, DEFAULT_ACCOUNT_PATTERN, anchored_pattern};
pub use amount::{Amount, AmountError};
pub use answer::{Answer, Field, ReadBack, read as read_answer};
pub use code::{Rejection, ResultCode};
pub use request::{Command, Params, Request, Rules, TxnDate, parse_params};
pub use txn_id::TxnId;
