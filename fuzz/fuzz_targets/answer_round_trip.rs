//! The XML answer round trip: any answer, with hostile echoes, comments and fields, renders
//! as well-formed XML that reads back to the same values (after the documented cleaning:
//! XML-unsafe characters replaced in the echo and removed elsewhere, lengths bounded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qiwi_gateway_fuzz::qiwi::{Amount, Answer, Field, ResultCode, read_answer};

const CODES: [ResultCode; 10] = [
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
];

fn unsafe_in_xml(c: char) -> bool {
    c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}'
}

fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|&c| !unsafe_in_xml(c)).take(max).collect()
}

type Input = (
    Option<String>,
    Option<i64>,
    Option<u64>,
    u8,
    String,
    Vec<(String, String)>,
);

fuzz_target!(|input: Input| {
    let (echo, prv, minor, code, comment, fields) = input;
    let result = CODES[usize::from(code) % CODES.len()];
    let sum = minor.map(|m| Amount::from_minor((m % 9_007_199_254_740_992) as i64));
    let fields: Vec<Field> = fields
        .into_iter()
        .take(10)
        .map(|(name, value)| Field { name, value })
        .collect();
    let answer = Answer {
        osmp_txn_id: echo.clone(),
        prv_txn: prv,
        sum,
        result,
        comment: comment.clone().into(),
        fields: fields.clone(),
    };
    let back = read_answer(&answer.render()).expect("well-formed answer");
    let want_echo = echo.map(|e| {
        e.chars()
            .take(64)
            .map(|c| if unsafe_in_xml(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
    });
    assert_eq!(back.get("osmp_txn_id").map(str::to_owned), want_echo);
    assert_eq!(
        back.get("prv_txn").map(str::to_owned),
        prv.map(|p| p.to_string())
    );
    assert_eq!(
        back.get("sum").map(|s| Amount::parse(s).expect("a sum")),
        sum
    );
    assert_eq!(back.get("result"), Some(result.code().to_string().as_str()));
    assert_eq!(
        back.get("comment").map(str::to_owned),
        Some(clean(&comment, 1024))
    );
    let want_fields: Vec<Field> = fields
        .iter()
        .map(|f| Field {
            name: clean(&f.name, 64),
            value: clean(&f.value, 1024),
        })
        .collect();
    assert_eq!(back.fields, want_fields);
});
