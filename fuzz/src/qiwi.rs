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

pub use account::Account;
pub use amount::{Amount, AmountError};
pub use answer::{Answer, Field, ReadBack, read as read_answer};
pub use code::{Rejection, ResultCode};
pub use request::{Command, Params, Request, Rules, TxnDate, parse_params};
pub use txn_id::TxnId;

/// The gateway's default `account_pattern`, anchored as the configuration compiles it.
/// (A copy of `account::DEFAULT_ACCOUNT_PATTERN` compiled by `account::anchored_pattern`,
/// kept equal by the gateway's test `the_fuzz_crate_uses_the_default_pattern`.)
pub const DEFAULT_ACCOUNT_PATTERN: &str =
    r"\A(?:^[^\s\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}]{1,200}$)\z";
