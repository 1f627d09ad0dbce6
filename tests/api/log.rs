//! Basic auth on `/payment` and the request log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use qiwi_gateway::config::{BasicAuth, Secret};

use crate::helpers::*;

fn with_auth(c: &mut qiwi_gateway::config::Config) {
    c.qiwi.http_auth = Some(BasicAuth {
        username: "qiwi".into(),
        password: Secret("pa55word".into()),
    });
}

#[tokio::test]
async fn basic_auth_is_required_when_configured() {
    let app = spawn_app_with(with_auth).await;
    let url = format!(
        "{}/payment?command=check&txn_id=1&account=a&sum=1",
        app.base
    );

    let none = app.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=")
    );

    let wrong = app
        .client
        .get(&url)
        .basic_auth("qiwi", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let right = app
        .client
        .get(&url)
        .basic_auth("qiwi", Some("pa55word"))
        .send()
        .await
        .unwrap();
    let a = XmlAnswer::from_response(right).await;
    assert_eq!((a.status, a.result()), (200, 0));

    // every attempt is logged, the secret masked but the user kept
    let rows: Vec<(i64, String)> = app
        .db()
        .prepare("SELECT status, headers FROM qiwi_http_log ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [401, 401, 200]
    );
    for (_, headers) in &rows[1..] {
        let h: serde_json::Value = serde_json::from_str(headers).unwrap();
        assert_eq!(h["authorization"], "Basic qiwi:***");
    }
    let all: String = app
        .db()
        .query_row(
            "SELECT group_concat(headers || url || body || response) FROM qiwi_http_log",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!all.contains("pa55word") && !all.contains(&STANDARD.encode("qiwi:pa55word")));
}

#[tokio::test]
async fn without_auth_configured_the_endpoint_is_open() {
    let app = spawn_app().await;
    assert_eq!(app.check("1", "a", "1").await.status, 200);
}

#[tokio::test]
async fn every_kind_of_request_is_one_log_row() {
    let app = spawn_app().await;
    let base = &app.base;
    // 405
    let r = app
        .client
        .delete(format!("{base}/payment?txn_id=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    // 413: the body is refused and not stored
    let big = "a".repeat(64 * 1024 + 1);
    let r = app
        .client
        .post(format!("{base}/payment"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // exactly 64 KiB is accepted (and is malformed: 300)
    let r = app.post_payment(&"b".repeat(64 * 1024)).await;
    assert_eq!(XmlAnswer::from_response(r).await.result(), 300);
    // wrong content type: protocol error 300, logged with its body
    let r = app
        .client
        .post(format!("{base}/payment"))
        .header("content-type", "application/json")
        .body(r#"{"command":"check"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(XmlAnswer::from_response(r).await.result(), 300);
    // a pay, logged in the same commit as the payment
    app.pay("77", "acc", "1").await;

    struct Row {
        method: String,
        url: String,
        ip: String,
        status: i64,
        result: Option<i64>,
        txn_id: Option<String>,
        body_len: i64,
        created_at: String,
    }
    let rows: Vec<Row> = app
        .db()
        .prepare(
            "SELECT method, url, ip, status, result, txn_id, length(body), created_at
             FROM qiwi_http_log ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(Row {
                method: r.get(0)?,
                url: r.get(1)?,
                ip: r.get(2)?,
                status: r.get(3)?,
                result: r.get(4)?,
                txn_id: r.get(5)?,
                body_len: r.get(6)?,
                created_at: r.get(7)?,
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        (
            rows[0].method.as_str(),
            rows[0].url.as_str(),
            rows[0].status
        ),
        ("DELETE", "/payment?txn_id=5", 405)
    );
    assert_eq!((rows[1].status, rows[1].body_len), (413, 0));
    // 64 KiB is over the 4 KiB a request may carry: logged as its first KiB and a marker
    // (`length` counts characters).
    let marker = qiwi_gateway::db::http_log::cut_marker(63 * 1024, 64 * 1024);
    assert_eq!(
        (rows[2].status, rows[2].result, rows[2].body_len),
        (200, Some(300), (1024 + marker.chars().count()) as i64)
    );
    assert_eq!((rows[3].result, rows[3].body_len), (Some(300), 19));
    assert_eq!(
        (rows[4].result, rows[4].txn_id.as_deref()),
        (Some(0), Some("77"))
    );
    assert!(rows.iter().all(|r| r.ip == "127.0.0.1"));
    // UTC 'YYYY-MM-DD HH:MM:SS', close to now
    let now = chrono::Utc::now().naive_utc();
    for r in &rows {
        let t = chrono::NaiveDateTime::parse_from_str(&r.created_at, "%Y-%m-%d %H:%M:%S").unwrap();
        assert!((now - t).num_seconds().abs() < 60, "{}", r.created_at);
    }
    // the answer QIWI was told is kept
    let response: String = app
        .db()
        .query_row(
            "SELECT response FROM qiwi_http_log WHERE txn_id = '77'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(response.contains("<result>0</result>"));
}

/// The answer a log row keeps is byte for byte the body QIWI got, for every kind of protocol
/// answer (the XML is rendered once and used for both: `src/qiwi/service.rs`).
#[tokio::test]
async fn the_logged_answer_is_the_answer_sent() {
    let app = spawn_app().await;
    let sent = [
        app.check("901", "79001234567", "10.45").await,
        app.pay("901", "79001234567", "10.45").await,
        app.pay("901", "79001234567", "10.45").await,
        app.pay("901", "79001234567", "99.00").await,
        app.query("command=pay&txn_id=x&account=a&sum=1").await,
        app.query("command=getInfo&account=79001234567").await,
    ];
    let logged: Vec<String> = app
        .db()
        .prepare("SELECT response FROM qiwi_http_log ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(logged.len(), sent.len());
    for (a, l) in sent.iter().zip(&logged) {
        assert!(a.raw.contains("<result>"), "{}", a.raw);
        assert_eq!(&a.raw, l);
    }
    let results: Vec<u16> = sent.iter().map(XmlAnswer::result).collect();
    assert_eq!(results, [0, 0, 0, 300, 300, 0]);
}

/// The issue's attack: a 38 KB URL and a 60 KiB form on the open endpoint. It is answered 300,
/// its row keeps 1 KiB of each and says how much was received, and the metric counts it.
#[tokio::test]
async fn an_oversized_request_is_answered_300_and_logged_cut_and_counted() {
    use qiwi_gateway::db::http_log::{CUT_HEAD, cut_marker};
    let app = spawn_app().await;
    let path = format!(
        "/payment?command=pay&txn_id=1&account=a&sum=1&txn_date=20240101120000&junk={}",
        "j".repeat(30_000)
    );
    let body = format!("form={}", "f".repeat(60 * 1024));
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let a = XmlAnswer::from_response(r).await;
    assert_eq!((a.status, a.result()), (200, 300));
    assert_eq!(a.get("osmp_txn_id"), Some("1"));
    assert_eq!(a.get("comment"), Some("request too large"));
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);

    let (url, stored_body, row_bytes, txn_id, result): (String, String, i64, String, i64) = app
        .db()
        .query_row(
            "SELECT url, body,
                    length(CAST(url || body || headers || response || ip || method
                                || created_at || COALESCE(txn_id, '') AS BLOB)),
                    txn_id, result
             FROM qiwi_http_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!((txn_id.as_str(), result), ("1", 300));
    assert_eq!(
        url,
        format!(
            "{}{}",
            &path[..CUT_HEAD],
            cut_marker(path.len() - CUT_HEAD, path.len())
        )
    );
    assert!(
        url.ends_with(" bytes not stored of 30,075 received]"),
        "{url}"
    );
    assert_eq!(
        stored_body,
        format!(
            "{}{}",
            &body[..CUT_HEAD],
            cut_marker(body.len() - CUT_HEAD, body.len())
        )
    );
    assert!(
        stored_body.ends_with("[… 60,421 bytes not stored of 61,445 received]"),
        "{}",
        &stored_body[CUT_HEAD..]
    );
    // 100 KB received, under 4 KiB stored (headers, answer and the two heads).
    assert!(row_bytes < 4096, "{row_bytes} bytes stored");
    assert_eq!(app.metric(r#"qiwi_http_log_cut_total{field="url"}"#), 1.0);
    assert_eq!(app.metric(r#"qiwi_http_log_cut_total{field="body"}"#), 1.0);
}

/// The largest real QIWI request is under 2 KiB: a pay up to the 4 KiB cap is stored, with
/// every extra parameter, and logged whole; one byte more is answered 300 and cut.
#[tokio::test]
async fn a_valid_pay_up_to_the_cap_is_stored_and_logged_whole() {
    use qiwi_gateway::db::http_log::FIELD_CAP;
    let app = spawn_app().await;
    let extras: Vec<(String, String)> = (0..14)
        .map(|i| {
            (
                format!("prv_field{i}"),
                char::from(b'a' + i).to_string().repeat(250),
            )
        })
        .collect();
    let path_for = |txn: &str, pad: usize| {
        let mut p = format!(
            "/payment?command=pay&txn_id={txn}&account={}&sum=1499.99&txn_date=20240101120000",
            "7".repeat(100)
        );
        for (k, v) in &extras {
            p.push_str(&format!("&{k}={v}"));
        }
        p.push_str("&pad=");
        p.push_str(&"p".repeat(pad));
        p
    };
    let base_len = path_for("1", 0).len();
    assert!(
        base_len > 2048,
        "a pay larger than any real one: {base_len}"
    );
    // The padding is an extra parameter too: within the 256 characters a pay may carry.
    assert!(FIELD_CAP - base_len < 256, "{base_len}");
    let exact = path_for("1", FIELD_CAP - base_len);
    let over = path_for("2", FIELD_CAP - base_len + 1);
    assert_eq!((exact.len(), over.len()), (FIELD_CAP, FIELD_CAP + 1));

    let get = |path: String| {
        let request = app.client.get(format!("{}{path}", app.base));
        async move { XmlAnswer::from_response(request.send().await.unwrap()).await }
    };
    assert_eq!(get(exact.clone()).await.result(), 0);
    let refused = get(over.clone()).await;
    assert_eq!(refused.result(), 300);
    assert_eq!(refused.get("comment"), Some("request too large"));

    let extra: String = app
        .db()
        .query_row(
            "SELECT extra FROM qiwi_transaction WHERE code = '1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let extra: std::collections::BTreeMap<String, String> = serde_json::from_str(&extra).unwrap();
    let mut want: std::collections::BTreeMap<String, String> = extras.into_iter().collect();
    want.insert("pad".into(), "p".repeat(FIELD_CAP - base_len));
    assert_eq!(extra, want);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
    let urls: Vec<String> = app
        .db()
        .prepare("SELECT url FROM qiwi_http_log ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(urls[0], exact);
    assert!(
        urls[1].ends_with("[… 3,073 bytes not stored of 4,097 received]"),
        "{}",
        urls[1]
    );
    assert_eq!(app.metric(r#"qiwi_http_log_cut_total{field="url"}"#), 1.0);
    assert_eq!(app.metric(r#"qiwi_http_log_cut_total{field="body"}"#), 0.0);
}
