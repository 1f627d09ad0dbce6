//! The admin UI in a real browser: headless Chromium driven over WebDriver (fantoccini and
//! Debian's `chromedriver`), against the real gateway with a local receiver as the merchant's
//! webhook endpoint.
//!
//! Needs `chromium` and `chromium-driver` (Debian). Without chromedriver the test prints a skip
//! line and passes, except with `CI=true`, where it fails. Screenshots of every page go to
//! `$SCREENSHOT_DIR` (default `target/screenshots`); `docs/screenshots` holds the committed ones:
//! `SCREENSHOT_DIR=docs/screenshots cargo test --test browser` refreshes them.

#[path = "api/helpers.rs"]
mod helpers;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use fantoccini::{Client, ClientBuilder, Locator};
use helpers::*;
use qiwi_gateway::config::Secret;

const PASSWORD: &str = "browser-test-password";
/// Account whose webhooks the receiver refuses, so the UI has failing deliveries to show.
const REFUSED_ACCOUNT: &str = "79995550000";

/// chromedriver on a free loopback port, in a process group of its own: dropping it (also when
/// the test panics before closing the browser) ends chromedriver and the Chromium it started.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group we created (below)
            // for chromedriver; it touches no memory.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver, or says why it cannot (`None`: the caller skips or fails).
async fn start_driver() -> Option<Driver> {
    let path = match std::env::var_os("CHROMEDRIVER") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => find_in_path("chromedriver"),
    }?;
    let port = free_port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver {
        child,
        url,
        _profile: tempfile::tempdir().unwrap(),
    };
    // Ready when /status answers.
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{}/status", driver.url)).send().await
            && r.status().is_success()
        {
            return Some(driver);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn browser(driver: &Driver) -> Client {
    let profile = driver._profile.path().display().to_string();
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-breakpad",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,900",
    ]
    .map(str::to_owned)
    .to_vec();
    args.push(format!("--user-data-dir={profile}"));
    let mut chrome = serde_json::json!({ "args": args });
    let binary = std::env::var_os("CHROME_BIN")
        .map(PathBuf::from)
        .or_else(|| find_in_path("chromium"));
    if let Some(b) = binary {
        chrome["binary"] = b.display().to_string().into();
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert("goog:chromeOptions".into(), chrome);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of the whole page, `width` wide: the window is stretched to the page's height
/// (plus the browser's own frame: the window is 900 high when it is measured) first.
async fn shot_at(c: &Client, name: &str, width: u32) {
    c.set_window_size(width, 900).await.unwrap();
    let sizes = c
        .execute(
            "return [document.documentElement.scrollHeight, 900 - window.innerHeight]",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| {
            let a = v.as_array()?;
            Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?))
        });
    if let Some((page, frame)) = sizes {
        let height = (page + frame).clamp(600, 3000);
        c.set_window_size(width, height as u32).await.unwrap();
    }
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
    c.set_window_size(1280, 900).await.unwrap();
}

async fn shot(c: &Client, name: &str) {
    shot_at(c, name, 1280).await;
}

/// Waits (bounded) until the browser is at a URL that `ok` accepts: a click starts a
/// navigation that may still be running when the click returns.
async fn wait_url(c: &Client, what: &str, ok: impl Fn(&url::Url) -> bool) {
    let start = Instant::now();
    loop {
        let u = c.current_url().await.unwrap();
        if ok(&u) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: still at {u}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Seeds what an operator would see after some days: payments from several accounts with
/// their extras, a delivery the backend keeps refusing, a check, and a malformed request.
async fn seed(app: &TestApp) {
    let accounts = ["79001234567", "79007654321", "ivanov-42", REFUSED_ACCOUNT];
    let sums = [
        "150", "99.90", "1200.50", "15", "350", "75.25", "5000", "10.05",
    ];
    for i in 0..18 {
        let account = accounts[i % accounts.len()];
        let sum = sums[i % sums.len()];
        let q = format!(
            "command=pay&txn_id={}&account={account}&sum={sum}&txn_date=2025031{}1{}3000&prv_id=4711&ccy=RUB",
            4_300_100 + i,
            i % 10,
            i % 10
        );
        assert_eq!(app.query(&q).await.result(), 0, "{q}");
    }
    assert_eq!(app.check("4300900", "79001234567", "100").await.result(), 0);
    assert_eq!(app.query("command=pay&txn_id=abc").await.result(), 300);
}

#[tokio::test]
async fn operator_logs_in_filters_opens_a_transaction_and_resends_its_webhook() {
    let Some(driver) = start_driver().await else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromedriver is missing: install chromium and chromium-driver");
        }
        println!("skip: chromedriver not found (install chromium and chromium-driver)");
        return;
    };

    // The merchant's backend: 200 for everyone but REFUSED_ACCOUNT.
    let received = Arc::new(AtomicUsize::new(0));
    let backend = spawn_backend(
        Router::new()
            .route(
                "/hook",
                post(
                    |State(n): State<Arc<AtomicUsize>>, body: String| async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        if body.contains(REFUSED_ACCOUNT) {
                            (StatusCode::SERVICE_UNAVAILABLE, "maintenance")
                        } else {
                            (StatusCode::OK, "ok")
                        }
                    },
                ),
            )
            .with_state(received.clone()),
    )
    .await;
    let app = spawn_app_with(|c| {
        c.admin_password = Some(Secret(PASSWORD.into()));
        c.webhook_url = Some(format!("{backend}/hook").parse().unwrap());
        // No retry of the refused deliveries while the test looks: only the resend.
        c.webhook_initial_delay = Duration::from_secs(600);
    })
    .await;
    seed(&app).await;
    // Wait until every payment had its first attempt.
    let start = Instant::now();
    while app.count("SELECT COUNT(*) FROM qiwi_transaction WHERE attempts = 0") > 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "worker too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let c = browser(&driver).await;
    let base = &app.base;

    // Not logged in: the login page, which leads back where we were going.
    c.goto(&format!("{base}/admin/transactions")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/admin/login")
    );
    shot(&c, "login").await;
    let form = c.form(Locator::Css("form.stack")).await.unwrap();
    form.set_by_name("username", "admin").await.unwrap();
    form.set_by_name("password", "not it").await.unwrap();
    form.submit().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[role=alert]"))
        .await
        .unwrap();
    assert!(
        text_of(&c, "[role=alert]")
            .await
            .contains("Wrong user name or password")
    );
    let form = c.form(Locator::Css("form.stack")).await.unwrap();
    form.set_by_name("username", "admin").await.unwrap();
    form.set_by_name("password", PASSWORD).await.unwrap();
    form.submit().await.unwrap();
    wait_url(&c, "login", |u| u.path() == "/admin/transactions").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/admin/transactions");
    assert_eq!(text_of(&c, "h1").await, "Transactions");
    let rows = c
        .find_all(Locator::Css("table.list tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 18);
    shot(&c, "transactions").await;

    // The dashboard.
    c.find(Locator::LinkText("Dashboard"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "dashboard", |u| u.path() == "/admin").await;
    assert_eq!(text_of(&c, "h1").await, "Dashboard");
    let body = text_of(&c, "main").await;
    assert!(body.contains("Failing deliveries"), "{body}");
    shot(&c, "dashboard").await;

    // Filter: one account, which the backend refuses.
    c.find(Locator::LinkText("Transactions"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "transactions", |u| u.path() == "/admin/transactions").await;
    let form = c.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("account", REFUSED_ACCOUNT).await.unwrap();
    form.submit().await.unwrap();
    wait_url(&c, "filter", |u| u.query().is_some()).await;
    let url = c.current_url().await.unwrap();
    assert!(
        url.query()
            .unwrap_or("")
            .contains(&format!("account={REFUSED_ACCOUNT}")),
        "filters live in the URL: {url}"
    );
    let rows = c
        .find_all(Locator::Css("table.list tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let text = r.text().await.unwrap();
        assert!(
            text.contains(REFUSED_ACCOUNT) && text.contains("failing"),
            "{text}"
        );
    }
    shot(&c, "transactions-filtered").await;
    shot_at(&c, "transactions-phone", 420).await;

    // Open the newest of them and resend its webhook.
    c.find(Locator::Css("table.list tbody tr td a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "transaction", |u| {
        u.path().starts_with("/admin/transactions/")
    })
    .await;
    assert!(text_of(&c, "h1").await.starts_with("Transaction "));
    let attempts_before = c
        .find_all(Locator::Css("#attempts tbody tr"))
        .await
        .unwrap()
        .len();
    assert!(attempts_before >= 1);
    let sent_before = received.load(Ordering::SeqCst);
    c.find(Locator::Css("#resend"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "resend", |u| u.query() == Some("resent=1")).await;
    assert!(
        text_of(&c, "#notice")
            .await
            .contains("Webhook delivery queued")
    );
    // The worker sends it at once; reload until the new attempt is listed.
    let start = Instant::now();
    loop {
        let n = c
            .find_all(Locator::Css("#attempts tbody tr"))
            .await
            .unwrap()
            .len();
        if n > attempts_before {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no new attempt row ({n})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.refresh().await.unwrap();
    }
    assert!(received.load(Ordering::SeqCst) > sent_before);
    let newest = text_of(&c, "#attempts tbody tr").await;
    assert!(newest.contains("503"), "{newest}");
    shot(&c, "transaction").await;

    // The request log, and one request with its headers, body and answer.
    c.find(Locator::LinkText("Request log"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "log", |u| u.path() == "/admin/log").await;
    assert_eq!(
        c.find_all(Locator::Css("table.list tbody tr"))
            .await
            .unwrap()
            .len(),
        20
    );
    shot(&c, "log").await;
    let pay_row = c
        .find(Locator::XPath(
            "//table[@class='list']//tr[contains(., 'command=pay&txn_id=4300117')]//td/a",
        ))
        .await
        .unwrap();
    pay_row.click().await.unwrap();
    wait_url(&c, "request", |u| u.path().starts_with("/admin/log/")).await;
    assert!(text_of(&c, "h1").await.starts_with("Request #"));
    let body = text_of(&c, "main").await;
    assert!(
        body.contains("<osmp_txn_id>4300117</osmp_txn_id>"),
        "{body}"
    );
    shot(&c, "request").await;
    c.find(Locator::Css("#txn-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "txn link", |u| {
        u.path().starts_with("/admin/transactions/")
    })
    .await;
    assert!(text_of(&c, "main").await.contains("4300117"));

    // Empty state and 404.
    c.goto(&format!("{base}/admin/transactions?account=nobody"))
        .await
        .unwrap();
    assert!(
        text_of(&c, "main")
            .await
            .contains("No transactions match these filters.")
    );
    shot(&c, "transactions-empty").await;
    c.goto(&format!("{base}/admin/no-such-page")).await.unwrap();
    assert_eq!(text_of(&c, "h1").await, "Page not found");
    shot(&c, "not-found").await;

    // Log out: the session is gone.
    c.find(Locator::Css("form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "logout", |u| u.path() == "/admin/login").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/admin/login")
    );
    c.goto(&format!("{base}/admin")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/admin/login")
    );

    c.close().await.unwrap();
}

/// Accounts stored with invisible or direction-changing characters (from before accounts were
/// restricted, or through a custom `account_pattern`) are shown written out in the browser: an
/// account of U+202E + `RTL1234` does not display as `4321LTR`, and `123` + U+200B + `456` does
/// not pass for `123456`.
#[tokio::test]
async fn spoofing_characters_in_an_account_are_shown_as_text_in_the_browser() {
    let Some(driver) = start_driver().await else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromedriver is missing: install chromium and chromium-driver");
        }
        println!("skip: chromedriver not found (install chromium and chromium-driver)");
        return;
    };
    let app = spawn_app_with(|c| c.admin_password = Some(Secret(PASSWORD.into()))).await;
    app.state
        .db
        .writer()
        .write(|c| {
            for (code, account) in [("801", "\u{202E}RTL1234"), ("802", "123\u{200B}456")] {
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

    let c = browser(&driver).await;
    c.goto(&format!("{}/admin/transactions", app.base))
        .await
        .unwrap();
    let form = c.form(Locator::Css("form.stack")).await.unwrap();
    form.set_by_name("username", "admin").await.unwrap();
    form.set_by_name("password", PASSWORD).await.unwrap();
    form.submit().await.unwrap();
    wait_url(&c, "login", |u| u.path() == "/admin/transactions").await;
    let table = text_of(&c, "table.list tbody").await;
    assert!(table.contains(r"\u{202E}RTL1234"), "{table}");
    assert!(table.contains(r"123\u{200B}456"), "{table}");
    assert!(
        !table.contains('\u{202E}') && !table.contains('\u{200B}'),
        "{table:?}"
    );
    shot(&c, "transactions-invisible").await;
    c.close().await.unwrap();
}
