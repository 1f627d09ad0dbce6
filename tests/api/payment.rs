//! `/payment`: the protocol end to end.

use futures::future::join_all;

use crate::helpers::*;

#[tokio::test]
async fn pay_is_stored_once_and_repeats_answer_the_same() {
    let app = spawn_app().await;
    let first = app.pay("1001", "79001234567", "10.45").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.content_type, "text/xml; charset=utf-8");
    assert_eq!(first.result(), 0);
    assert_eq!(first.get("osmp_txn_id"), Some("1001"));
    assert_eq!(first.get("sum"), Some("10.45"));
    let prv = first.get("prv_txn").unwrap().to_owned();

    let again = app.pay("1001", "79001234567", "10.45").await;
    assert_eq!(again.result(), 0);
    assert_eq!(again.get("prv_txn"), Some(prv.as_str()));
    // 10.450 would be malformed, but 10.45 written differently is the same sum
    let same_sum = app.pay("1001", "79001234567", "010.45").await;
    assert_eq!(same_sum.result(), 0);
    assert_eq!(same_sum.get("prv_txn"), Some(prv.as_str()));

    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
    let (id, account, code, sum, status, minor, date): (
        i64,
        String,
        String,
        f64,
        i64,
        i64,
        String,
    ) = app
        .db()
        .query_row(
            "SELECT id, account, code, sum, status, sum_minor, txn_date FROM qiwi_transaction",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(id.to_string(), prv);
    assert_eq!((account.as_str(), code.as_str()), ("79001234567", "1001"));
    assert_eq!((sum, status, minor), (10.45, 0, 1045));
    assert_eq!(date, "20240101120000");
}

#[tokio::test]
async fn pay_with_a_reused_txn_id_and_other_data_is_refused() {
    let app = spawn_app().await;
    assert_eq!(app.pay("7", "acc1", "5").await.result(), 0);
    let other_sum = app.pay("7", "acc1", "5.01").await;
    assert_eq!(other_sum.result(), 300);
    assert_eq!(other_sum.get("prv_txn"), None);
    assert_eq!(app.pay("7", "acc2", "5").await.result(), 300);
    let (sum, account): (i64, String) = app
        .db()
        .query_row("SELECT sum_minor, account FROM qiwi_transaction", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((sum, account.as_str()), (500, "acc1"));
}

#[tokio::test]
async fn fifty_identical_pays_at_once_and_a_repeat_after_restart_make_one_row() {
    let app = spawn_app().await;
    let answers = join_all((0..50).map(|_| app.pay("555", "acc", "99.99"))).await;
    let prv: Vec<_> = answers
        .iter()
        .map(|a| a.get("prv_txn").unwrap().to_owned())
        .collect();
    assert!(answers.iter().all(|a| a.result() == 0));
    assert!(prv.iter().all(|p| *p == prv[0]), "{prv:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);

    let dir = app.stop().await;
    let cfg = test_config(&dir);
    let app = start_in(dir, cfg).await;
    let again = app.pay("555", "acc", "99.99").await;
    assert_eq!(
        (again.result(), again.get("prv_txn")),
        (0, Some(prv[0].as_str()))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
}

#[tokio::test]
async fn many_distinct_concurrent_pays_each_get_their_own_row() {
    let app = spawn_app().await;
    let answers = join_all((0..200).map(|i| app.pay_owned(format!("{}", 10_000 + i)))).await;
    let mut prv: Vec<i64> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.result(), 0, "{}", a.raw);
            a.get("prv_txn").unwrap().parse().unwrap()
        })
        .collect();
    prv.sort_unstable();
    prv.dedup();
    assert_eq!(prv.len(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 200);
    // each answer's prv_txn is the row of its own txn_id
    for a in &answers {
        let code: String = app
            .db()
            .query_row(
                "SELECT code FROM qiwi_transaction WHERE id = ?1",
                [a.get("prv_txn").unwrap()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(Some(code.as_str()), a.get("osmp_txn_id"));
    }
}

impl TestApp {
    async fn pay_owned(&self, txn_id: String) -> XmlAnswer {
        self.pay(&txn_id, "acc", "1.00").await
    }
}

#[tokio::test]
async fn post_form_works_like_get() {
    let app = spawn_app().await;
    let resp = app
        .post_payment("command=pay&txn_id=42&account=acc&sum=15&txn_date=20240101120000&ccy=RUB")
        .await;
    let a = XmlAnswer::from_response(resp).await;
    assert_eq!(a.result(), 0);
    assert_eq!(a.get("sum"), Some("15.00"));
    let extra: String = app
        .db()
        .query_row(
            "SELECT extra FROM qiwi_transaction WHERE code = '42'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(extra, r#"{"ccy":"RUB"}"#);
}

#[tokio::test]
async fn every_result_code_of_the_parameter_table_over_http() {
    let app =
        spawn_app_with(|c| c.qiwi.max_sum = Some(qiwi_gateway::qiwi::Amount::from_minor(100_000)))
            .await;
    let cases = [
        ("", 300),
        ("command=refund&txn_id=1&account=a&sum=1", 300),
        ("command=check&txn_id=1x&account=a&sum=1", 300),
        (
            "command=check&txn_id=123456789012345678901&account=a&sum=1",
            300,
        ),
        ("command=check&txn_id=1&sum=1", 300),
        ("command=check&txn_id=1&account=a", 0),
        (
            "command=pay&txn_id=1&account=a&txn_date=20240229120000",
            300,
        ),
        (
            "command=pay&txn_id=1&account=a&sum=0&txn_date=20240229120000",
            241,
        ),
        ("command=check&txn_id=1&account=a&sum=1,00", 300),
        ("command=check&txn_id=1&account=a&sum=1e2", 300),
        ("command=check&txn_id=1&account=a%20b&sum=1", 4),
        ("command=check&txn_id=1&account=a&sum=0.00", 0),
        ("command=check&txn_id=1&account=a&sum=1000.01", 242),
        ("command=check&txn_id=1&account=a&sum=1000", 0),
        ("command=pay&txn_id=1&account=a&sum=1", 300),
        (
            "command=pay&txn_id=1&account=a&sum=1&txn_date=20230229120000",
            300,
        ),
        (
            "command=pay&txn_id=1&account=a&sum=1&txn_date=20240229120000",
            0,
        ),
    ];
    for (q, want) in cases {
        let a = app.query(q).await;
        assert_eq!(a.status, 200, "{q}");
        assert_eq!(a.content_type, "text/xml; charset=utf-8");
        assert_eq!(a.result(), want, "{q}: {}", a.raw);
        assert!(a.get("comment").is_some_and(|c| !c.is_empty()));
    }
    // check stores nothing; only the one valid pay is stored
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM qiwi_http_log"),
        cases.len() as i64
    );
}

#[tokio::test]
async fn hostile_values_are_escaped_in_well_formed_answers() {
    let app = spawn_app().await;
    let a = app
        .query("command=nope&txn_id=%3C%2Fosmp_txn_id%3E%3Cresult%3E0%3C%2Fresult%3E%01&account=a&sum=1")
        .await;
    assert_eq!(a.result(), 300);
    assert_eq!(
        a.get("osmp_txn_id"),
        Some("</osmp_txn_id><result>0</result>\u{FFFD}")
    );
    let huge = format!(
        "command=check&txn_id=1&account={}&sum=1",
        "x".repeat(10_000)
    );
    // Over the 4 KiB a QIWI request may carry: refused as too large (300) before the account
    // rule, and logged cut (db::http_log::FIELD_CAP).
    assert_eq!(app.query(&huge).await.result(), 300);
    let long = format!("command=check&txn_id=1&account={}&sum=1", "x".repeat(201));
    assert_eq!(app.query(&long).await.result(), 4);
}

#[tokio::test]
async fn payments_switched_off_answer_7_but_known_pays_still_answer_0() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(&dir);
    let app = start_in(dir, cfg).await;
    let prv = app
        .pay("900", "acc", "3")
        .await
        .get("prv_txn")
        .unwrap()
        .to_owned();
    let dir = app.stop().await;
    let mut cfg = test_config(&dir);
    cfg.qiwi.payments_enabled = false;
    let app = start_in(dir, cfg).await;
    assert_eq!(app.pay("901", "acc", "3").await.result(), 7);
    assert_eq!(app.check("902", "acc", "3").await.result(), 7);
    let repeat = app.pay("900", "acc", "3").await;
    assert_eq!(
        (repeat.result(), repeat.get("prv_txn")),
        (0, Some(prv.as_str()))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
}

#[tokio::test]
async fn a_locked_database_answers_1_never_0_and_recovers() {
    let app = spawn_app().await;
    // Another process holds SQLite's write lock past the writer's busy timeout.
    let locker = rusqlite::Connection::open(&app.db_path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let a = app.pay("3100", "acc", "1").await;
    assert_eq!(a.result(), 1, "{}", a.raw);
    assert_eq!(a.get("prv_txn"), None);
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let a = app.pay("3100", "acc", "1").await;
    assert_eq!(a.result(), 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
}

/// Issue: a repeated pay of a stored payment got a fatal code once the operator tightened a
/// rule. The rules (account pattern, min/max sum, maintenance) only refuse NEW payments; a
/// stored txn_id is answered from its row, as the README promises for a repeat.
#[tokio::test]
async fn a_stored_pay_repeated_after_the_rules_tighten_answers_its_row() {
    use qiwi_gateway::qiwi::{Amount, anchored_pattern};
    type Tighten = fn(&mut qiwi_gateway::config::Config);
    let cases: [(&str, Tighten, u16); 4] = [
        (
            "MAX_SUM=50",
            |c| c.qiwi.max_sum = Some(Amount::from_minor(5_000)),
            242,
        ),
        (
            "MIN_SUM=200",
            |c| c.qiwi.min_sum = Amount::from_minor(20_000),
            241,
        ),
        (
            "ACCOUNT_PATTERN=[0-9]+",
            |c| c.qiwi.account_pattern = anchored_pattern("[0-9]+").unwrap(),
            4,
        ),
        (
            "PAYMENTS_ENABLED=false",
            |c| c.qiwi.payments_enabled = false,
            7,
        ),
    ];
    for (rule, tighten, refused) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cfg = test_config(&dir);
        let app = start_in(dir, cfg).await;
        let first = app.pay("777", "ACC-1", "100.00").await;
        assert_eq!(first.result(), 0, "{rule}: {}", first.raw);
        let prv = first.get("prv_txn").unwrap().to_owned();
        assert_eq!(prv, "1");
        let dir = app.stop().await;
        let mut cfg = test_config(&dir);
        tighten(&mut cfg);
        let app = start_in(dir, cfg).await;

        let repeat = app.pay("777", "ACC-1", "100.00").await;
        assert_eq!(
            (repeat.result(), repeat.get("prv_txn"), repeat.get("sum")),
            (0, Some(prv.as_str()), Some("100.00")),
            "{rule}: {}",
            repeat.raw
        );
        // a repeat that differs is still a conflict, whatever the rule says
        assert_eq!(
            app.pay("777", "ACC-1", "99.00").await.result(),
            300,
            "{rule}"
        );
        assert_eq!(
            app.pay("777", "ACC-2", "100.00").await.result(),
            300,
            "{rule}"
        );
        // a new payment under the tightened rule is still refused, and so is a check
        let new = app.pay("778", "ACC-1", "100.00").await;
        assert_eq!(
            (new.result(), new.get("prv_txn")),
            (refused, None),
            "{rule}"
        );
        assert_eq!(app.check("779", "ACC-1", "100.00").await.result(), refused);
        assert_eq!(
            app.count("SELECT COUNT(*) FROM qiwi_transaction"),
            1,
            "{rule}"
        );
        // the repeat changed nothing
        assert_eq!(
            app.count("SELECT COUNT(*) FROM qiwi_transaction WHERE id = 1 AND code = '777' AND account = 'ACC-1' AND sum_minor = 10000"),
            1
        );
    }
}

/// A sum too large to store, on a stored txn_id, is a conflicting repeat (300); on a new one
/// the maximum's 242.
#[tokio::test]
async fn an_unstorable_sum_is_242_when_new_and_300_on_a_stored_txn_id() {
    let app = spawn_app().await;
    assert_eq!(app.pay("1", "a", "1.00").await.result(), 0);
    let huge = "1000000000000000000";
    assert_eq!(app.pay("1", "a", huge).await.result(), 300);
    assert_eq!(app.pay("2", "a", huge).await.result(), 242);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
}

/// Issue: invalid UTF-8 in an EXTRA parameter refused the whole pay (300). Extras are never
/// refused: what is not UTF-8 is read as windows-1251; the protocol's own parameters stay
/// strict.
#[tokio::test]
async fn extra_parameters_that_are_not_utf8_never_refuse_a_pay() {
    let app = spawn_app().await;
    let extra = |code: &str| -> String {
        app.db()
            .query_row(
                "SELECT extra FROM qiwi_transaction WHERE code = ?1",
                [code],
                |r| r.get(0),
            )
            .unwrap()
    };
    // a query string
    let a = app
        .query("command=pay&txn_id=501&account=a&sum=10&txn_date=20240101120000&ccy=%C8")
        .await;
    assert_eq!(a.result(), 0, "{}", a.raw);
    assert_eq!(extra("501"), r#"{"ccy":"И"}"#);
    // a windows-1251 form body: raw bytes and percent-encoded ones, in a name and a value
    let mut body = b"command=pay&txn_id=502&account=a&sum=10&txn_date=20240101120000&fio=".to_vec();
    body.extend_from_slice(b"\xC8\xE2\xE0\xED\xEE\xE2&%E8%EC%FF=%C8%E2%E0%ED");
    let resp = app
        .client
        .post(format!("{}/payment", app.base))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=windows-1251",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let a = XmlAnswer::from_response(resp).await;
    assert_eq!(a.result(), 0, "{}", a.raw);
    assert_eq!(extra("502"), r#"{"fio":"Иванов","имя":"Иван"}"#);
    // the protocol's parameters keep their strict rule
    let a = app
        .query("command=pay&txn_id=503&account=a%C8&sum=10&txn_date=20240101120000")
        .await;
    assert_eq!(a.result(), 300);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 2);
}
