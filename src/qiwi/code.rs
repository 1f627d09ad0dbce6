//! The protocol's result codes and the one place every rejection becomes one.

/// The protocol's result codes (see `shared/spec/qiwi-protocol.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    /// 0: success.
    Ok,
    /// 1: temporary error; QIWI repeats the request later.
    Temporary,
    /// 4: wrong account format.
    BadAccount,
    /// 5: account not found.
    AccountNotFound,
    /// 7: payments forbidden by the provider (maintenance).
    Forbidden,
    /// 79: account not active (a check backend's verdict).
    AccountInactive,
    /// 241: sum too small.
    SumTooSmall,
    /// 242: sum too large.
    SumTooLarge,
    /// 243: cannot check the account (a check backend's verdict).
    CannotCheck,
    /// 300: other provider error (malformed request, conflicting repeat).
    Other,
}

impl ResultCode {
    /// The number on the wire.
    pub fn code(self) -> u16 {
        match self {
            ResultCode::Ok => 0,
            ResultCode::Temporary => 1,
            ResultCode::BadAccount => 4,
            ResultCode::AccountNotFound => 5,
            ResultCode::Forbidden => 7,
            ResultCode::AccountInactive => 79,
            ResultCode::SumTooSmall => 241,
            ResultCode::SumTooLarge => 242,
            ResultCode::CannotCheck => 243,
            ResultCode::Other => 300,
        }
    }

    /// The default comment for this code.
    pub fn comment(self) -> &'static str {
        match self {
            ResultCode::Ok => "OK",
            ResultCode::Temporary => "Temporary error, please retry later",
            ResultCode::BadAccount => "Wrong account format",
            ResultCode::AccountNotFound => "Account not found",
            ResultCode::Forbidden => "Payments are not accepted at the moment",
            ResultCode::AccountInactive => "Account not active",
            ResultCode::SumTooSmall => "Sum too small",
            ResultCode::SumTooLarge => "Sum too large",
            ResultCode::CannotCheck => "Cannot check the account",
            ResultCode::Other => "Provider error",
        }
    }
}

/// Why a request is answered with something other than 0, as the protocol maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A parameter is missing, repeated or malformed (300).
    #[error("{0}")]
    Malformed(&'static str),
    /// The account does not match `account_pattern` (4).
    #[error("wrong account format")]
    BadAccount,
    /// The sum is below `min_sum` (241).
    #[error("sum below the minimum")]
    SumTooSmall,
    /// The sum is above `max_sum` or beyond what can be stored (242).
    #[error("sum above the maximum")]
    SumTooLarge,
    /// Payments are switched off (7).
    #[error("payments are switched off")]
    Forbidden,
    /// The `txn_id` was paid before with another account or sum (300).
    #[error("txn_id already used with another account or sum")]
    Conflict,
    /// The check backend does not know the account (5).
    #[error("account not found")]
    AccountNotFound,
    /// Something passing failed (database, check backend): QIWI should retry (1).
    #[error("temporary failure")]
    Temporary,
}

impl Rejection {
    /// The one place every rejection becomes a result code.
    pub fn result_code(self) -> ResultCode {
        match self {
            Rejection::Malformed(_) | Rejection::Conflict => ResultCode::Other,
            Rejection::BadAccount => ResultCode::BadAccount,
            Rejection::SumTooSmall => ResultCode::SumTooSmall,
            Rejection::SumTooLarge => ResultCode::SumTooLarge,
            Rejection::Forbidden => ResultCode::Forbidden,
            Rejection::AccountNotFound => ResultCode::AccountNotFound,
            Rejection::Temporary => ResultCode::Temporary,
        }
    }

    /// The comment sent to QIWI: the malformed parameter is named, nothing internal is.
    pub fn comment(self) -> &'static str {
        match self {
            Rejection::Malformed(why) => why,
            Rejection::Conflict => "txn_id already used with another account or sum",
            other => other.result_code().comment(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_doc_lists_every_code_the_gateway_answers() {
        let doc = include_str!("../../docs/protocol.md");
        let section = &doc[doc.find("## Result codes").expect("the section")..];
        let table = &section[section.find("\n|").expect("the table")..];
        let table = &table[..table.find("\n\n").expect("the table ends")];
        assert!(table.lines().count() > 10, "{table}");
        for code in [
            ResultCode::Ok,
            ResultCode::Temporary,
            ResultCode::BadAccount,
            ResultCode::AccountNotFound,
            ResultCode::Forbidden,
            ResultCode::AccountInactive,
            ResultCode::SumTooSmall,
            ResultCode::SumTooLarge,
            ResultCode::CannotCheck,
            ResultCode::Other,
        ] {
            let n = code.code();
            let listed = table.lines().any(|l| {
                l.strip_prefix("| ")
                    .and_then(|l| l.split(" |").next())
                    .is_some_and(|cell| cell.split(" / ").any(|c| c == n.to_string()))
            });
            assert!(listed, "docs/protocol.md, Result codes, has no row for {n}");
        }
    }
}
