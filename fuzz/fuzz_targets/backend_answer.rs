//! A check backend's answer: status and content type chosen by the first byte, the rest is
//! the body. Every verdict keeps the bounds, and its fields survive the XML answer unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qiwi_gateway_fuzz::qiwi::backend::{MAX_FIELDS, MAX_NAME, MAX_VALUE, Verdict, judge};
use qiwi_gateway_fuzz::qiwi::{Answer, ResultCode, read_answer};

const STATUSES: [u16; 8] = [200, 200, 200, 200, 404, 429, 503, 302];
const TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/html"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(first & 7)];
    let content_type = TYPES[usize::from((first >> 3) & 3)];
    match judge(status, content_type, body) {
        Verdict::Valid(fields) => {
            assert_eq!(status, 200);
            assert!(fields.len() <= MAX_FIELDS);
            for f in &fields {
                assert!((1..=MAX_NAME).contains(&f.name.len()));
                assert!(
                    f.name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                );
                assert!(f.value.chars().count() <= MAX_VALUE);
                assert!(!f.value.chars().any(char::is_control));
            }
            let answer = Answer {
                fields: fields.clone(),
                ..Answer::code(ResultCode::Ok, None)
            };
            let back = read_answer(&answer.render()).expect("well-formed answer");
            assert_eq!(back.fields, fields);
        }
        Verdict::Refused { result, comment } => {
            assert_eq!(status, 200);
            assert!(!matches!(result, ResultCode::Ok | ResultCode::Temporary));
            if let Some(c) = comment {
                assert!(c.chars().count() <= MAX_VALUE && !c.chars().any(char::is_control));
            }
        }
        Verdict::NotFound => assert!(!matches!(status, 200 | 429 | 503)),
        Verdict::Unavailable => assert_ne!(status, 404),
    }
});
