//! Reconciliation of QIWI's registry: registries in both encodings and all three delimiters,
//! with every kind of difference, over the real binary (`qiwi-gateway reconcile FILE`) and
//! through the admin page's upload; each line of the report is checked.

use std::process::Command;

use regex::Regex;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_qiwi-gateway");
const PASSWORD: &str = "reconcile-test-password";

/// The payments stored here, paid through `/payment`: ids 1..=6 in this order.
const PAYMENTS: [(&str, &str, &str, &str); 6] = [
    ("9001", "79000000001", "100.00", "20240301100000"),
    ("9002", "79000000002", "1500.50", "20240301110000"),
    ("9003", "79000000003", "200.00", "20240301120000"),
    ("9004", "79000000004", "300.00", "20240302090000"),
    ("9005", "79000000005", "50.00", "20240302100000"),
    // Outside the registry's period: never "missing from the registry".
    ("9006", "79000000006", "70.00", "20240305100000"),
];

/// QIWI's registry: one matching line per date format (with a leading-zero txn_id and a
/// thousands space), another sum, another account, a payment we never got, a malformed sum,
/// and a total line that does not add up.
const REGISTRY: [[&str; 5]; 8] = [
    ["TXN_ID", "txn_date", "Account", "SUM", "Примечание"],
    [
        "0009001",
        "01.03.2024 10:00:00",
        "79000000001",
        "100,00",
        "терминал 1",
    ],
    ["9002", "2024-03-01 11:00:00", "79000000002", "1 500,50", ""],
    ["9003", "20240301120000", "79000000003", "250,00", ""],
    ["9004", "02.03.2024 09:00:00", "79000000099", "300.00", ""],
    [
        "9100",
        "02.03.2024 15:30:00",
        "Иванов",
        "999,99",
        "нет у нас",
    ],
    ["9101", "02.03.2024 16:00:00", "79000000007", "abc", ""],
    ["Итого", "", "", "3400,49", ""],
];

/// The difference lines the report must print, in order.
const EXPECTED: [&str; 6] = [
    "line 6  txn_id 9100  2024-03-02 12:30:00 UTC  registry: account Иванов sum 999.99  the gateway has no payment with this txn_id",
    "txn_id 9005  prv_txn 5  txn_date 20240302100000  here: account 79000000005 sum 50.00  QIWI's registry does not list this payment",
    "line 4  txn_id 9003  prv_txn 3  2024-03-01 09:00:00 UTC  registry: account 79000000003 sum 250.00  here: account 79000000003 sum 200.00  sum 250.00 in the registry, 200.00 here",
    "line 5  txn_id 9004  prv_txn 4  2024-03-02 06:00:00 UTC  registry: account 79000000099 sum 300.00  here: account 79000000004 sum 300.00  account differs",
    "line 7  sum \"abc\" is not a sum like 1500, 1 500,50 or 1500.50",
    "line 8  the total line says 3400.49, the registry's payments add up to 3150.49",
];

/// The registry's bytes with `delimiter`, in UTF-8 (`bom`) or windows-1251.
fn registry(delimiter: char, cp1251: bool, bom: bool) -> Vec<u8> {
    let mut text = String::new();
    for row in REGISTRY {
        let cells: Vec<String> = row
            .iter()
            .map(|c| {
                if c.contains(delimiter) {
                    format!("\"{c}\"")
                } else {
                    (*c).to_owned()
                }
            })
            .collect();
        text.push_str(&cells.join(&delimiter.to_string()));
        text.push_str("\r\n");
    }
    if cp1251 {
        encoding_rs::WINDOWS_1251.encode(&text).0.into_owned()
    } else if bom {
        [&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat()
    } else {
        text.into_bytes()
    }
}

/// Every variant: three delimiters, each in UTF-8 with and without BOM and in windows-1251.
fn variants() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for (d, dname) in [(';', "semicolon"), (',', "comma"), ('\t', "tab")] {
        for (cp, bom, ename) in [
            (false, false, "utf8"),
            (false, true, "utf8bom"),
            (true, false, "cp1251"),
        ] {
            v.push((
                format!("registry-{dname}-{ename}.csv"),
                registry(d, cp, bom),
            ));
        }
    }
    v
}

async fn seeded() -> TestApp {
    let app = spawn_app_with(|c| {
        c.admin.password = Some(qiwi_gateway::config::Secret(PASSWORD.into()));
        c.admin.reconcile_max_upload = 4096;
    })
    .await;
    for (txn, account, sum, date) in PAYMENTS {
        let a = app
            .query(&format!(
                "command=pay&txn_id={txn}&account={account}&sum={sum}&txn_date={date}"
            ))
            .await;
        assert_eq!(a.result(), 0, "pay {txn}");
    }
    app
}

/// A stored differing line: (kind, line, txn_id, prv_txn).
type StoredLine = (String, Option<i64>, Option<String>, Option<i64>);

/// The rows a stored reconciliation has.
fn stored_lines(app: &TestApp, id: i64) -> Vec<StoredLine> {
    let db = app.db();
    let mut stmt = db
        .prepare(
            "SELECT kind, line, txn_id, transaction_id FROM reconciliation_line
             WHERE reconciliation_id = ?1 ORDER BY id",
        )
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn expected_stored() -> Vec<StoredLine> {
    [
        ("missing_here", Some(6), Some("9100"), None),
        ("missing_from_registry", None, Some("9005"), Some(5)),
        ("different", Some(4), Some("9003"), Some(3)),
        ("different", Some(5), Some("9004"), Some(4)),
        ("malformed", Some(7), None, None),
        ("total", Some(8), None, None),
    ]
    .into_iter()
    .map(|(k, l, t, p)| (k.to_owned(), l, t.map(str::to_owned), p))
    .collect()
}

#[tokio::test]
async fn the_cli_reports_every_difference_in_every_encoding_and_delimiter() {
    let app = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, bytes)) in variants().into_iter().enumerate() {
        let path = dir.path().join(&name);
        std::fs::write(&path, &bytes).unwrap();
        let out = Command::new(BIN)
            .env_clear()
            .current_dir(dir.path())
            .env("DATABASE_PATH", &app.db_path)
            .env("USER", "accountant")
            .arg("reconcile")
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        let differences: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("  ")).collect();
        assert_eq!(differences, EXPECTED, "{name}:\n{stdout}");
        let at = |prefix: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{name}: no {prefix:?} in\n{stdout}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(at("verdict:"), ["verdict:", "6", "differences"]);
        assert_eq!(at("matched:"), ["matched:", "2", "payments,", "1600.50"]);
        let enc = if name.contains("cp1251") {
            "windows-1251,"
        } else {
            "UTF-8,"
        };
        let delim = match () {
            () if name.contains("semicolon") => ";;",
            () if name.contains("comma") => ",;",
            () => "tab;",
        };
        assert_eq!(at("read as:")[2..5], [enc, "separator", delim], "{name}");
        assert_eq!(
            at("2024-03-01"),
            ["2024-03-01", "3", "1850.50", "3", "1800.50", "50.00"]
        );
        assert_eq!(
            at("2024-03-02"),
            ["2024-03-02", "2", "1299.99", "2", "350.00", "949.99"]
        );
        assert_eq!(at("all"), ["all", "5", "3150.49", "5", "2150.50", "999.99"]);
        let id = (i + 1) as i64;
        assert_eq!(
            at("stored as"),
            [
                "stored",
                "as",
                "reconciliation",
                &format!("{id}:"),
                &format!("/admin/reconcile/{id}")
            ]
        );
        assert_eq!(stored_lines(&app, id), expected_stored(), "{name}");
        // Audited (issue 16.3): who ran it (the OS user), from where, which report.
        let audit: (String, String, String, String) = app
            .db()
            .query_row(
                "SELECT username, ip, action, detail FROM admin_audit ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            audit,
            (
                "cli:accountant".to_owned(),
                "local".to_owned(),
                "reconcile".to_owned(),
                format!("reconciliation {id} of “{name}”: 6 difference(s)")
            )
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_audit"),
        variants().len() as i64
    );
    // Reconciling only reads: the payments are as they were.
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 6);
    assert_eq!(
        app.count("SELECT SUM(sum_minor) FROM qiwi_transaction"),
        222_050
    );
}

#[tokio::test]
async fn the_cli_gives_one_message_for_what_is_not_a_registry_and_stores_nothing() {
    let app = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, message) in [
        ("empty.csv", &b""[..], "the file is empty"),
        (
            "page.html",
            b"<!DOCTYPE html><html><body>Login</body></html>",
            "HTML page",
        ),
        ("book.xlsx", b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "binary"),
        (
            "other.csv",
            b"id;when;who;amount\n1;2;3;4\n",
            "does not name the columns txn_id",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new(BIN)
            .env_clear()
            .current_dir(dir.path())
            .env("DATABASE_PATH", &app.db_path)
            .args(["reconcile", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("qiwi-gateway: ")
                && last.contains("not a registry")
                && last.contains(message),
            "{name}: {stderr}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM reconciliation"), 0);
}

/// A logged-in admin: the session cookie and its CSRF token.
async fn login(app: &TestApp) -> (String, String) {
    let resp = app
        .client
        .get(format!("{}/admin/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = set_cookie(&resp, "qg_login_csrf");
    let html = resp.text().await.unwrap();
    let token = hidden(&html, "csrf");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", token.as_str()),
            ("next", "/admin"),
            ("username", "admin"),
            ("password", PASSWORD),
        ])
        .finish();
    let resp = app
        .client
        .post(format!("{}/admin/login", app.base))
        .header(COOKIE, format!("qg_login_csrf={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&resp, "qg_session");
    let html = get(app, &session, "/admin/reconcile").await.1;
    (session, hidden(&html, "csrf"))
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no cookie {name}"))
        .to_owned()
}

fn hidden(html: &str, name: &str) -> String {
    let re = Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
    re.captures(html)
        .unwrap_or_else(|| panic!("no {name} in {html}"))[1]
        .to_owned()
}

async fn get(app: &TestApp, session: &str, path: &str) -> (StatusCode, String) {
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .header(COOKIE, format!("qg_session={session}"))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Uploads `bytes` as a browser's multipart form would, the token in the action URL.
async fn upload(
    app: &TestApp,
    session: &str,
    csrf: &str,
    name: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let boundary = "----qiwi-gateway-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"registry\"; filename=\"{name}\"\r\n\
         Content-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    app.client
        .post(format!("{}/admin/reconcile?csrf={csrf}", app.base))
        .header(COOKIE, format!("qg_session={session}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_uploaded_registry_is_reported_stored_listed_and_downloadable() {
    let app = seeded().await;
    let (session, csrf) = login(&app).await;
    for (n, (name, bytes)) in variants().into_iter().enumerate() {
        let resp = upload(&app, &session, &csrf, &name, &bytes).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        let id = n + 1;
        assert_eq!(
            resp.headers()[LOCATION],
            format!("/admin/reconcile/{id}").as_str()
        );
        assert_eq!(stored_lines(&app, id as i64), expected_stored(), "{name}");

        let (status, html) = get(&app, &session, &format!("/admin/reconcile/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        // Missing here comes first, in red, and links to the request log of its txn_id.
        let missing = html
            .find("In QIWI&#39;s registry, missing here (1)")
            .or_else(|| html.find("In QIWI's registry, missing here (1)"))
            .unwrap_or_else(|| panic!("{html}"));
        assert!(html[..missing].contains("panel-bad"), "{html}");
        assert!(
            html.contains(r#"<a href="/admin/log?txn=9100">9100</a>"#),
            "{html}"
        );
        // Payments here link to their transaction page.
        for (txn, id) in [("9005", 5), ("9003", 3), ("9004", 4)] {
            assert!(
                html.contains(&format!(r#"<a href="/admin/transactions/{id}">{txn}</a>"#)),
                "{txn}: {html}"
            );
        }
        assert!(html.contains("Иванов"), "decoded account: {html}");
        assert!(html.contains("6 differences"));

        let resp = app
            .client
            .get(format!("{}/admin/reconcile/{id}/csv", app.base))
            .header(COOKIE, format!("qg_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let csv = resp.text().await.unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(
            rows,
            [
                "kind,line,txn_id,prv_txn,registry_date_utc,registry_account,registry_sum,here_txn_date,here_account,here_sum,reason",
                "missing_here,6,9100,,2024-03-02 12:30:00,Иванов,999.99,,,,the gateway has no payment with this txn_id",
                "missing_from_registry,,9005,5,,,,20240302100000,79000000005,50.00,QIWI's registry does not list this payment",
                "different,4,9003,3,2024-03-01 09:00:00,79000000003,250.00,20240301120000,79000000003,200.00,\"sum 250.00 in the registry, 200.00 here\"",
                "different,5,9004,4,2024-03-02 06:00:00,79000000099,300.00,20240302090000,79000000004,300.00,account differs",
                "malformed,7,,,,,,,,,\"sum \"\"abc\"\" is not a sum like 1500, 1 500,50 or 1500.50\"",
                "total,8,,,,,3400.49,,,,\"the total line says 3400.49, the registry's payments add up to 3150.49\"",
                "matched,,,,,,1600.50,,,1600.50,2 payments",
                "totals,,,,2024-03-01,,1850.50,,,1800.50,\"registry 3 payments, here 3, difference 50.00\"",
                "totals,,,,2024-03-02,,1299.99,,,350.00,\"registry 2 payments, here 2, difference 949.99\"",
                "totals,,,,all,,3150.49,,,2150.50,\"registry 5 payments, here 5, difference 999.99\"",
            ],
            "{name}"
        );
    }
    // The list: newest first, with file name, checksum and verdict.
    let (_, html) = get(&app, &session, "/admin/reconcile").await;
    let names: Vec<String> = Regex::new(r#"<a href="/admin/reconcile/\d+">(registry-[^<]+)</a>"#)
        .unwrap()
        .captures_iter(&html)
        .map(|c| c[1].to_owned())
        .collect();
    let mut want: Vec<String> = variants().into_iter().map(|v| v.0).collect();
    want.reverse();
    assert_eq!(names, want);
    let sha: String = app
        .db()
        .query_row("SELECT sha256 FROM reconciliation WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(sha.len(), 64);
    assert!(html.contains(&sha));
    // Each upload is on the audit page: who, from where, which report.
    let (_, html) = get(&app, &session, "/admin/audit").await;
    for (n, (name, _)) in variants().into_iter().enumerate() {
        let detail = format!("reconciliation {} of “{name}”: 6 difference(s)", n + 1);
        assert!(html.contains(&detail), "{detail}: {html}");
    }
    let rows: Vec<(String, String, String)> = {
        let db = app.db();
        let mut st = db
            .prepare("SELECT username, ip, action FROM admin_audit ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(rows.len(), variants().len());
    for r in rows {
        assert_eq!(
            r,
            (
                "admin".to_owned(),
                "127.0.0.1".to_owned(),
                "reconcile".to_owned()
            )
        );
    }
}

#[tokio::test]
async fn uploads_need_the_csrf_token_a_registry_and_a_size_under_the_limit() {
    let app = seeded().await;
    let (session, csrf) = login(&app).await;
    let good = registry(';', false, false);
    // No or another token: refused before anything is read.
    let resp = upload(&app, &session, "wrong", "r.csv", &good).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Not a registry: the form again with one message, escaped; nothing stored.
    let resp = upload(
        &app,
        &session,
        &csrf,
        "<b>page</b>.html",
        b"<html><body>hi</body></html>",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    assert!(
        !html.contains("<b>page"),
        "the file name is escaped: {html}"
    );
    assert!(html.contains("&#60;b&#62;page&#60;/b&#62;.html"), "{html}");
    assert!(
        html.contains("the file is an HTML page, not a registry"),
        "{html}"
    );
    // Over the configured limit (4 KiB here).
    let big = [good.clone(), vec![b'\n'; 5000]].concat();
    let resp = upload(&app, &session, &csrf, "big.csv", &big).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(resp.text().await.unwrap().contains("larger than"));
    assert_eq!(app.count("SELECT COUNT(*) FROM reconciliation"), 0);
    // And without a session, to the login page.
    let resp = app
        .client
        .post(format!("{}/admin/reconcile?csrf={csrf}", app.base))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/admin/login");
}
