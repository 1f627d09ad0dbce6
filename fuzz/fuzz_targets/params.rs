//! The `/payment` parameter parser: a query string and a form body (split at the first
//! 0xFF byte, which percent-encoded text never contains), decoded and judged. Whatever
//! arrives ends in a request or a rejection, and an accepted request keeps every rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qiwi_gateway_fuzz::qiwi::{Amount, Answer, Command, Params, Rules, parse_params, read_answer};
use regex::Regex;
use std::sync::LazyLock;

static PATTERN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(qiwi_gateway_fuzz::qiwi::DEFAULT_ACCOUNT_PATTERN).unwrap());

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let rules = Rules {
        account_pattern: &PATTERN,
        min_sum: Amount::from_minor(1),
        max_sum: Some(Amount::from_minor(1_500_000)),
    };
    let mut params = Params::default();
    parse_params(query, &mut params);
    parse_params(body, &mut params);
    // parse is read then judge: a request that reads is refused exactly by its breach (the
    // business rule a pay is held to only when its txn_id is new).
    if let Ok(draft) = params.read() {
        assert_eq!(params.parse(&rules).err(), draft.breach(&rules));
    }
    match params.parse(&rules) {
        Ok(r) => {
            if let Some(t) = &r.txn_id {
                assert!((1..=20).contains(&t.received().len()));
                assert!(t.received().bytes().all(|b| b.is_ascii_digit()));
                assert!(t.canonical() == "0" || !t.canonical().starts_with('0'));
                assert!(t.received().ends_with(t.canonical()));
            }
            assert!(PATTERN.is_match(r.account.as_str()));
            if let Some(s) = r.sum {
                assert!(s >= rules.min_sum && s <= Amount::from_minor(1_500_000));
            }
            match r.command {
                Command::Pay => {
                    assert!(r.txn_id.is_some() && r.sum.is_some() && r.txn_date.is_some());
                }
                Command::Check => assert!(r.txn_id.is_some() && r.txn_date.is_none()),
                Command::GetInfo => assert!(r.txn_date.is_none()),
            }
            assert!(r.extra.len() <= 32);
        }
        Err(rejection) => {
            // The answer to a rejection is well-formed and says the same code.
            let answer = Answer {
                comment: rejection.comment().into(),
                ..Answer::code(rejection.result_code(), params.txn_id().map(str::to_owned))
            };
            let back = read_answer(&answer.render()).expect("well-formed answer");
            let code = rejection.result_code().code().to_string();
            assert_eq!(back.get("result"), Some(code.as_str()));
        }
    }
});
