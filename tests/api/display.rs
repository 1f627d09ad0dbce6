//! What the admin pages and the CSV export show of request data: invisible and
//! direction-changing characters written out as `\u{...}`, and configured URLs without their
//! credentials. Logs in over real HTTP as a browser would.

use qiwi_gateway::config::Secret;
use regex::Regex;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

use crate::helpers::*;

const PASSWORD: &str = "correct horse battery";

fn cookie(resp: &reqwest::Response, name: &str) -> String {
    let set = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"));
    set.split(';').next().unwrap().to_owned()
}

/// Logs in through the login form; returns the session's `Cookie` header value.
async fn login(app: &TestApp) -> String {
    let resp = app
        .client
        .get(format!("{}/admin/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie(&resp, "qg_login_csrf");
    let html = resp.text().await.unwrap();
    let token = Regex::new(r#"name="csrf" value="([^"]*)""#)
        .unwrap()
        .captures(&html)
        .unwrap()[1]
        .to_owned();
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
        .header(COOKIE, login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    cookie(&resp, "qg_session")
}

async fn page(app: &TestApp, session: &str, path: &str) -> String {
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.text().await.unwrap()
}

/// Characters that must never reach a page or the CSV as themselves.
const HIDDEN: &[char] = &['\u{202E}', '\u{200B}', '\u{2066}', '\u{FEFF}', '\u{00A0}'];

fn assert_shown(what: &str, text: &str) {
    for c in HIDDEN {
        assert!(
            !text.contains(*c),
            "{what} contains U+{:04X} as itself",
            u32::from(*c)
        );
    }
}

#[tokio::test]
async fn invisible_characters_in_request_data_are_written_out_on_pages_and_in_csv() {
    let app = spawn_app_with(|c| c.admin.password = Some(Secret(PASSWORD.into()))).await;
    let session = login(&app).await;
    // Stored as they may be in a database from before accounts were restricted, or through
    // a custom account_pattern.
    let writer = app.state.db.writer();
    writer
        .write(|c| {
            for (code, account) in [
                ("901", "\u{202E}RTL1234"),
                ("902", "123\u{200B}456"),
                ("903", "\\u{202E}RTL1234"),
                ("904", "a\u{2066}b\u{FEFF}c\u{00A0}d"),
            ] {
                c.execute(
                    "INSERT INTO qiwi_transaction
                         (account, code, sum, status, created_at, sum_minor, txn_date)
                     VALUES (?1, ?2, 1.0, 0, '2024-01-01 00:00:00', 100, '20240101000000')",
                    rusqlite::params![account, code],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();

    let list = page(&app, &session, "/admin/transactions").await;
    assert_shown("the transactions page", &list);
    assert!(list.contains(r"\u{202E}RTL1234"), "{list}");
    assert!(list.contains(r"123\u{200B}456"));
    // The seven typed characters `\u{202E}` cannot pass for the real one.
    assert!(list.contains(r"\\u{202E}RTL1234"));
    assert!(list.contains(r"a\u{2066}b\u{FEFF}c\u{A0}d"));

    let id: i64 = app
        .db()
        .query_row(
            "SELECT id FROM qiwi_transaction WHERE code = '901'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let detail = page(&app, &session, &format!("/admin/transactions/{id}")).await;
    assert_shown("the transaction page", &detail);
    assert!(detail.contains(r"\u{202E}RTL1234"));

    let csv = page(&app, &session, "/admin/transactions.csv").await;
    // The one U+FEFF allowed is the byte-order mark Excel needs, first and only there.
    let csv = csv
        .strip_prefix('\u{FEFF}')
        .expect("the CSV starts with a byte-order mark");
    assert_shown("the CSV export", csv);
    assert!(csv.contains(r"123\u{200B}456"), "{csv}");
    assert!(csv.contains(r"\u{202E}RTL1234"));

    // A request carrying them in its parameters: its log row shows them written out.
    let resp = app
        .get_payment("command=check&txn_id=905&account=%E2%80%AERTL1234&sum=1&note=x%E2%80%8By")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let log_id: i64 = app
        .db()
        .query_row("SELECT MAX(id) FROM qiwi_http_log", [], |r| r.get(0))
        .unwrap();
    let request = page(&app, &session, &format!("/admin/log/{log_id}")).await;
    assert_shown("the request page", &request);
    assert!(request.contains(r"\u{202E}RTL1234"), "{request}");
    assert!(request.contains(r"x\u{200B}y"), "{request}");
}

#[tokio::test]
async fn the_dashboard_shows_configured_urls_without_credentials() {
    let app = spawn_app_with(|c| {
        c.admin.password = Some(Secret(PASSWORD.into()));
        c.webhook.url = Some(
            "http://hookuser:hookpass@127.0.0.1:9/hook?token=hooktok"
                .parse()
                .unwrap(),
        );
        c.check.url = Some(
            "http://chkuser:chkpass@127.0.0.1:9/check?token=chktok"
                .parse()
                .unwrap(),
        );
    })
    .await;
    let session = login(&app).await;
    let html = page(&app, &session, "/admin").await;
    assert!(html.contains("127.0.0.1:9/hook"), "{html}");
    for secret in [
        "hookuser", "hookpass", "hooktok", "chkuser", "chkpass", "chktok",
    ] {
        assert!(!html.contains(secret), "{secret} on the dashboard");
    }
}
