//! The protocol as terminals and integrators speak it (issue 11): getInfo, display fields and
//! verdicts from a real check backend, temporary statuses, the zero-sum check, canonical
//! txn_ids, `/payment/`, and times that do not exist.

use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use qiwi_gateway::config::{BasicAuth, Secret};
use qiwi_gateway::qiwi::{Field, read_answer};

use crate::helpers::*;

const JSON: &str = "application/json";

/// A check backend whose answer is chosen by the account: `s{NNN}` answers status NNN,
/// `json:{name}` one of the JSON bodies below, `text` a plain 200.
async fn backend() -> String {
    let router = Router::new().route(
        "/check",
        get(|Query(q): Query<Vec<(String, String)>>| async move {
            let account = q
                .into_iter()
                .find(|(k, _)| k == "account")
                .map(|(_, v)| v)
                .unwrap_or_default();
            answer(&account)
        }),
    );
    spawn_backend(router).await
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, JSON)], body).into_response()
}

fn answer(account: &str) -> Response {
    if let Some(code) = account.strip_prefix('s') {
        let code: u16 = code.parse().unwrap();
        let mut resp = (StatusCode::from_u16(code).unwrap(), "x").into_response();
        if code == 302 {
            resp.headers_mut()
                .insert(header::LOCATION, "/check?account=text".parse().unwrap());
        }
        return resp;
    }
    match account {
        "text" => "OK".into_response(),
        "object" => json(
            r#"{"fields": {"disp1": "Ivanov I.I.", "disp2": "-120.00"}, "unknown": [1]}"#.into(),
        ),
        "array" => json(
            r#"{"fields": [{"name": "debt", "value": "-120.00"}, {"name": "fio", "value": "Петров П.П."}]}"#
                .into(),
        ),
        "php" => (
            // PHP's default content type: a JSON object is still read.
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            r#"{"fields":{"name":"Sidorov"}}"#,
        )
            .into_response(),
        "bounds" => {
            let mut fields: Vec<serde_json::Value> = vec![
                serde_json::json!({"name": "n".repeat(33), "value": "dropped: name too long"}),
                serde_json::json!({"name": "bad name", "value": "dropped"}),
                serde_json::json!({"name": "long", "value": "v".repeat(1000)}),
                serde_json::json!({"name": "hostile", "value": "</field2><result>0</result>&\u{0}\u{7}\u{1b}[2J\"'"}),
                serde_json::json!({"name": "obj", "value": {"nested": true}}),
            ];
            for i in 0..20 {
                fields.push(serde_json::json!({"name": format!("f{i}"), "value": i}));
            }
            json(serde_json::json!({ "fields": fields }).to_string())
        }
        "blocked" => json(r#"{"result": 79, "comment": "Account blocked <until> 2027"}"#.into()),
        "gone" => json(r#"{"result": 5}"#.into()),
        "weird" => json(r#"{"result": 1, "comment": "retry?"}"#.into()),
        "broken" => json(r#"{"fields": {"disp1": "unterminated"#.into()),
        "huge" => json(format!(r#"{{"fields":{{"a":"{}"}}}}"#, "x".repeat(100_000))),
        other => panic!("unexpected account {other}"),
    }
}

async fn app_with_backend() -> TestApp {
    let base = backend().await;
    spawn_app_with(|c| {
        c.check.url = Some(format!("{base}/check").parse().unwrap());
        c.check.timeout = Duration::from_secs(5);
    })
    .await
}

/// The display fields of an answer, parsed strictly from its XML.
fn fields(a: &XmlAnswer) -> Vec<(String, String)> {
    read_answer(&a.raw)
        .unwrap_or_else(|| panic!("not a well-formed answer: {}", a.raw))
        .fields
        .into_iter()
        .map(|Field { name, value }| (name, value))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn get_info(app: &TestApp, account: &str) -> XmlAnswer {
    app.query(&format!(
        "command=getInfo&account={account}&ccy=643&sum=0.00"
    ))
    .await
}

#[tokio::test]
async fn display_fields_in_object_and_array_form_reach_check_and_get_info() {
    let app = app_with_backend().await;
    let check = app.check("1", "object", "10").await;
    assert_eq!(check.result(), 0);
    assert_eq!(
        fields(&check),
        pairs(&[("disp1", "Ivanov I.I."), ("disp2", "-120.00")])
    );
    assert!(
        check.raw.contains(
            "<fields><field1 name=\"disp1\">Ivanov I.I.</field1><field2 name=\"disp2\">-120.00</field2></fields>"
        ),
        "{}",
        check.raw
    );
    let info = get_info(&app, "array").await;
    assert_eq!(info.result(), 0);
    assert_eq!(
        fields(&info),
        pairs(&[("debt", "-120.00"), ("fio", "Петров П.П.")])
    );
    assert_eq!(
        fields(&app.check("2", "php", "10").await),
        pairs(&[("name", "Sidorov")])
    );
    // a backend that knows nothing of JSON: valid, no fields (the original product)
    let plain = app.check("3", "text", "10").await;
    assert_eq!((plain.result(), fields(&plain).len()), (0, 0));
    assert!(!plain.raw.contains("<fields"));
    // the fields are in the request log's answer
    let logged: String = app
        .db()
        .query_row(
            "SELECT response FROM qiwi_http_log WHERE txn_id = '1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(logged.contains("<field1 name=\"disp1\">Ivanov I.I.</field1>"));
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
}

#[tokio::test]
async fn fields_are_bounded_cleaned_and_escaped() {
    let app = app_with_backend().await;
    let a = app.check("1", "bounds", "10").await;
    assert_eq!(a.result(), 0, "{}", a.raw);
    let f = fields(&a);
    assert_eq!(f.len(), 10, "{f:?}");
    assert_eq!(f[0].0, "long");
    assert_eq!(f[0].1, "v".repeat(255));
    assert_eq!(f[1].0, "hostile");
    assert_eq!(f[1].1, "</field2><result>0</result>&[2J\"'");
    assert_eq!(f[2], ("f0".to_owned(), "0".to_owned()));
    assert_eq!(f[9], ("f7".to_owned(), "7".to_owned()));
    // the hostile value did not forge an element: one result, and it is 0
    assert_eq!(a.raw.matches("<result>").count(), 1);
    // a body beyond the read limit under a JSON type is a broken backend: 1
    assert_eq!(app.check("2", "huge", "10").await.result(), 1);
}

#[tokio::test]
async fn verdicts_of_the_backend_are_passed_on_or_answered_1() {
    let app = app_with_backend().await;
    let blocked = app.check("1", "blocked", "10").await;
    assert_eq!(blocked.result(), 79);
    assert_eq!(blocked.get("comment"), Some("Account blocked <until> 2027"));
    assert_eq!(blocked.get("osmp_txn_id"), Some("1"));
    assert_eq!(get_info(&app, "blocked").await.result(), 79);
    let gone = app.check("2", "gone", "10").await;
    assert_eq!(
        (gone.result(), gone.get("comment")),
        (5, Some("Account not found"))
    );
    // a result that is not a fatal code, and invalid JSON: the backend's fault, passing
    assert_eq!(app.check("3", "weird", "10").await.result(), 1);
    assert_eq!(app.check("4", "broken", "10").await.result(), 1);
    assert_eq!(get_info(&app, "broken").await.result(), 1);
}

#[tokio::test]
async fn temporary_statuses_answer_1_and_others_5() {
    let app = app_with_backend().await;
    for (status, want) in [
        (408, 1),
        (425, 1),
        (429, 1),
        (500, 1),
        (502, 1),
        (503, 1),
        (504, 1),
        (404, 5),
        (410, 5),
        (400, 5),
        (403, 5),
        (302, 5),
        (201, 5),
        (204, 5),
    ] {
        let a = app.check("1", &format!("s{status}"), "10").await;
        assert_eq!(a.result(), want, "{status}: {}", a.raw);
        assert_eq!(get_info(&app, &format!("s{status}")).await.result(), want);
    }
}

#[tokio::test]
async fn get_info_is_answered_like_check_without_txn_ids() {
    // without a check backend every well-formed account is valid
    let app = spawn_app().await;
    let a = app
        .query("command=getInfo&account=79001234567&ccy=643&prv_id=1&data1=x")
        .await;
    assert_eq!((a.status, a.result()), (200, 0));
    assert_eq!(a.content_type, "text/xml; charset=utf-8");
    assert_eq!((a.get("osmp_txn_id"), a.get("prv_txn")), (None, None));
    // even a txn_id sent along is not echoed; getInfo registers nothing
    let a = app.query("command=getInfo&txn_id=5&account=a").await;
    assert_eq!((a.result(), a.get("osmp_txn_id")), (0, None));
    assert_eq!(app.query("command=getInfo&account=a%20b").await.result(), 4);
    assert_eq!(app.query("command=getInfo").await.result(), 300);
    assert_eq!(
        app.query("command=getInfo&account=a&sum=1,5")
            .await
            .result(),
        300
    );
    assert_eq!(
        app.post_payment("command=getInfo&account=acc")
            .await
            .status(),
        200
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_http_log"), 6);
    // with maintenance on, like check: 7
    let app = spawn_app_with(|c| c.qiwi.payments_enabled = false).await;
    assert_eq!(app.query("command=getInfo&account=a").await.result(), 7);
}

#[tokio::test]
async fn a_check_before_the_money_is_in_skips_the_limits_but_not_the_backend() {
    let app = app_with_backend().await;
    for q in [
        "command=check&txn_id=0&account=object&sum=0.00",
        "command=check&txn_id=0&account=object&sum=0",
        "command=check&txn_id=0&account=object",
        "command=getInfo&account=object",
    ] {
        let a = app.query(q).await;
        assert_eq!(a.result(), 0, "{q}: {}", a.raw);
        // the backend was called: its fields are there
        assert_eq!(fields(&a).len(), 2, "{q}");
    }
    // the backend's verdict still counts at sum 0
    assert_eq!(
        app.query("command=check&txn_id=0&account=blocked&sum=0.00")
            .await
            .result(),
        79
    );
    // a sum that is given is judged: pay keeps every rule
    let limited = spawn_app_with(|c| {
        c.qiwi.min_sum = qiwi_gateway::qiwi::Amount::from_minor(100);
        c.qiwi.max_sum = Some(qiwi_gateway::qiwi::Amount::from_minor(1000));
    })
    .await;
    assert_eq!(limited.check("1", "a", "0.00").await.result(), 0);
    assert_eq!(limited.check("1", "a", "0.50").await.result(), 241);
    assert_eq!(limited.check("1", "a", "10.01").await.result(), 242);
    assert_eq!(limited.pay("2", "a", "0.00").await.result(), 241);
    assert_eq!(limited.pay("2", "a", "0").await.result(), 241);
    assert_eq!(
        limited
            .query("command=pay&txn_id=2&account=a&txn_date=20240101120000")
            .await
            .result(),
        300
    );
    assert_eq!(limited.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
}

#[tokio::test]
async fn leading_zeros_do_not_make_a_second_payment() {
    let app = spawn_app().await;
    let first = app.pay("881401", "acc", "10.00").await;
    assert_eq!(first.result(), 0);
    let prv = first.get("prv_txn").unwrap().to_owned();
    for padded in ["0881401", "000881401", "00000000000000881401"] {
        let again = app.pay(padded, "acc", "10.00").await;
        assert_eq!(again.result(), 0, "{padded}");
        assert_eq!(again.get("prv_txn"), Some(prv.as_str()));
        // osmp_txn_id is echoed exactly as received
        assert_eq!(again.get("osmp_txn_id"), Some(padded));
        // and with other data it is the same txn_id reused: 300
        assert_eq!(app.pay(padded, "acc", "10.01").await.result(), 300);
    }
    // stored canonical, the other way round too; 0 stays 0
    let padded_first = app.pay("00042", "acc", "1").await;
    assert_eq!(padded_first.get("osmp_txn_id"), Some("00042"));
    assert_eq!(
        app.pay("42", "acc", "1").await.get("prv_txn"),
        padded_first.get("prv_txn")
    );
    assert_eq!(app.pay("000", "acc", "2").await.result(), 0);
    assert_eq!(app.pay("0", "acc", "2").await.result(), 0);
    let codes: Vec<String> = app
        .db()
        .prepare("SELECT code FROM qiwi_transaction ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(codes, ["881401", "42", "0"]);
    // the request log files every request of a payment under its number
    assert_eq!(
        app.count("SELECT COUNT(*) FROM qiwi_http_log WHERE txn_id = '881401'"),
        7
    );
}

#[tokio::test]
async fn payment_with_a_trailing_slash_is_the_same_endpoint() {
    let app = spawn_app_with(|c| {
        c.qiwi.http_auth = Some(BasicAuth {
            username: "qiwi".into(),
            password: Secret("pa55word".into()),
        });
    })
    .await;
    let q = "command=pay&txn_id=9&account=a&sum=1&txn_date=20240101120000";
    let url = |path: &str| format!("{}{path}?{q}", app.base);
    // same auth
    let unauth = app.client.get(url("/payment/")).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    assert!(unauth.headers().contains_key("www-authenticate"));
    let slash = app
        .client
        .get(url("/payment/"))
        .basic_auth("qiwi", Some("pa55word"))
        .send()
        .await
        .unwrap();
    let slash = XmlAnswer::from_response(slash).await;
    assert_eq!((slash.status, slash.result()), (200, 0));
    let plain = app
        .client
        .get(url("/payment"))
        .basic_auth("qiwi", Some("pa55word"))
        .send()
        .await
        .unwrap();
    let plain = XmlAnswer::from_response(plain).await;
    assert_eq!(plain.get("prv_txn"), slash.get("prv_txn"));
    // POST with a form body too
    let post = app
        .client
        .post(format!("{}/payment/", app.base))
        .basic_auth("qiwi", Some("pa55word"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("command=check&txn_id=10&account=a&sum=1")
        .send()
        .await
        .unwrap();
    assert_eq!(XmlAnswer::from_response(post).await.result(), 0);
    // same log: every request, the refused one included, with its path as called
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM qiwi_http_log WHERE url LIKE '/payment/?%' OR url = '/payment/'"
        ),
        3
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM qiwi_http_log WHERE status = 401"),
        1
    );
    // other paths keep their 404
    for path in ["/payment//", "/payments", "/payment/x", "/Payment"] {
        let resp = app.client.get(url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_allow_list_covers_payment_with_a_slash() {
    let app =
        spawn_app_with(|c| c.qiwi.allowed_ips = vec!["79.142.16.0/20".parse().unwrap()]).await;
    let resp = app
        .client
        .get(format!(
            "{}/payment/?command=check&txn_id=1&account=a&sum=1",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM qiwi_http_log WHERE status = 403"),
        1
    );
}

#[tokio::test]
async fn times_that_do_not_exist_are_300() {
    let app = spawn_app().await;
    let pay = |date: &str| format!("command=pay&txn_id=1&account=a&sum=1&txn_date={date}");
    for date in [
        "20261130101560", // second 60
        "20261231235960", // a leap second's usual place
        "20261130106000", // minute 60
        "20261130240000", // hour 24
        "20260230120000", // Feb 30
        "20250229120000", // Feb 29 in a common year
        "20261301120000", // month 13
        "20261100120000", // day 0
        "20261130101599",
    ] {
        let a = app.query(&pay(date)).await;
        assert_eq!(a.result(), 300, "{date}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
    assert_eq!(app.query(&pay("20240229235959")).await.result(), 0);
}
