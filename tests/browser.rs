//! The admin UI in a real browser: headless Chromium driven over WebDriver (fantoccini and
//! Debian's `chromedriver`), against the real gateway with a local receiver as the merchant's
//! webhook endpoint.
//!
//! Needs `chromium` and `chromium-driver` (Debian): without chromedriver on `PATH`, or with a
//! `CHROMEDRIVER` that is not an executable file, the test FAILS. The only way to skip it is
//! `SKIP_BROWSER=1` (`scripts/test` then leaves it out and counts it as skipped in its summary
//! line). Screenshots of every page go to
//! `$SCREENSHOT_DIR` (default `target/screenshots`); `docs/screenshots` holds the committed ones:
//! `SCREENSHOT_DIR=docs/screenshots cargo test --test browser` refreshes them.

#![allow(clippy::unwrap_used)] // a test/bench may unwrap: a panic is its failure report

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
        // kill(2) with a negative pid: the process group we created (below) for chromedriver.
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::KILL,
        );
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

/// Whether the browser tests are skipped: only ever by `SKIP_BROWSER=1`, never because
/// something is missing.
fn skip_browser() -> bool {
    std::env::var("SKIP_BROWSER").as_deref() == Ok("1")
}

/// Starts chromedriver; `None` only with `SKIP_BROWSER=1` (the caller then skips). A missing
/// chromedriver or a `CHROMEDRIVER` that is not a file panics: the test fails, never passes
/// unrun.
async fn start_driver() -> Option<Driver> {
    if skip_browser() {
        return None;
    }
    let path = match std::env::var_os("CHROMEDRIVER") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "CHROMEDRIVER={} is not a file: point it at chromedriver, or set SKIP_BROWSER=1 \
                 to skip the browser tests",
                p.display()
            );
            p
        }
        None => find_in_path("chromedriver").unwrap_or_else(|| {
            panic!(
                "chromedriver is not on PATH: install chromium and chromium-driver (scripts/test \
                 does), or set SKIP_BROWSER=1 to skip the browser tests"
            )
        }),
    };
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
    browser_with(driver, &[]).await
}

/// [`browser`] with `extra` command-line switches for Chromium.
async fn browser_with(driver: &Driver, extra: &[&str]) -> Client {
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
    args.extend(extra.iter().map(|a| (*a).to_owned()));
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
        println!("skip: SKIP_BROWSER=1");
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
        c.admin.password = Some(Secret(PASSWORD.into()));
        c.webhook.url = Some(format!("{backend}/hook").parse().unwrap());
        c.webhook.secret = Some(Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()));
        // No retry of the refused deliveries while the test looks: only the resend.
        c.webhook.backoff.initial = Duration::from_secs(600);
        // A Moscow merchant: every time on the pages is Moscow time, and labelled so.
        c.admin.display_timezone = "Europe/Moscow".parse().unwrap();
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
    // Open /payment and /metrics are warned about on the page itself.
    let warnings = text_of(&c, "#warnings").await;
    assert!(warnings.contains("/payment is open"), "{warnings}");
    assert!(warnings.contains("/metrics is open"), "{warnings}");
    assert!(body.contains("Europe/Moscow"), "{body}");
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
    // Count and total of the filtered set; times in Moscow.
    let totals = text_of(&c, "#totals").await;
    assert!(totals.contains("4 payment(s) match"), "{totals}");
    // (Headers are upper-cased by the stylesheet.)
    assert!(
        text_of(&c, "table.list thead")
            .await
            .to_lowercase()
            .contains("europe/moscow")
    );
    shot(&c, "transactions-filtered").await;
    // On a 390 px phone the sum and the state stay on screen.
    c.set_window_size(390, 900).await.unwrap();
    let badge = c
        .find(Locator::Css("table.list tbody tr .badge"))
        .await
        .unwrap();
    let (x, _, w, _) = badge.rectangle().await.unwrap();
    let (wx, _, ww, _) = c
        .find(Locator::Css(".table-wrap"))
        .await
        .unwrap()
        .rectangle()
        .await
        .unwrap();
    assert!(
        x + w <= wx + ww,
        "state badge at {x}+{w}, the list ends at {wx}+{ww}"
    );
    c.set_window_size(1280, 900).await.unwrap();
    shot_at(&c, "transactions-phone", 390).await;

    // Account prefix search.
    c.goto(&format!("{base}/admin/transactions?account=7999555"))
        .await
        .unwrap();
    assert_eq!(
        c.find_all(Locator::Css("table.list tbody tr"))
            .await
            .unwrap()
            .len(),
        4
    );

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

    // What each attempt sent, beside its answer (issue 16.3): the newest is open, with the
    // signature headers and the body; "copy as curl" holds the same request.
    let txn_url = c.current_url().await.unwrap();
    let head = text_of(&c, "details.attempt[open] pre.request-head").await;
    assert!(head.starts_with("POST http://127.0.0.1"), "{head}");
    assert!(head.contains("webhook-signature: v1,"), "{head}");
    let body = text_of(&c, "details.attempt[open] pre.request-body").await;
    assert!(body.contains(REFUSED_ACCOUNT), "{body}");
    let answer = text_of(&c, "details.attempt[open] pre.response").await;
    assert!(
        answer.contains("503") && answer.contains("maintenance"),
        "{answer}"
    );
    let curl = c
        .find(Locator::Css("#curl"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(curl.starts_with("curl -X POST"), "{curl}");
    assert!(curl.contains(&body), "{curl}");
    shot(&c, "transaction-attempts").await;

    // The signature debugger: paste the signature and timestamp the backend logged.
    c.find(Locator::Css("#debugger-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "debugger", |u| u.path().ends_with("/signature")).await;
    let signed = text_of(&c, "#signed").await;
    let sig = text_of(&c, "#sig-sent").await;
    let ts = text_of(&c, "#sig-ts").await;
    assert!(signed.contains(&format!(".{ts}.{body}")), "{signed}");
    c.find(Locator::Css("#paste-signature"))
        .await
        .unwrap()
        .send_keys(&sig)
        .await
        .unwrap();
    c.find(Locator::Css("#paste-timestamp"))
        .await
        .unwrap()
        .send_keys(&ts)
        .await
        .unwrap();
    // The backend re-serialised the JSON before verifying: one space more.
    c.find(Locator::Css("#paste-body"))
        .await
        .unwrap()
        .send_keys(&body.replacen(':', ": ", 1))
        .await
        .unwrap();
    c.find(Locator::Css("#verify"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verdict = text_of(&c, "#verdict").await;
    assert!(verdict.contains("body: The body differs"), "{verdict}");
    assert!(verdict.contains("byte offset"), "{verdict}");
    assert!(verdict.contains("timestamp: The timestamp"), "{verdict}");
    shot(&c, "signature-debugger").await;
    c.goto(txn_url.as_str()).await.unwrap();

    // Resend every undelivered one from the list: the notice shows once, the rows say
    // queued (or already failing again), and a reload drops the notice.
    c.goto(&format!("{base}/admin/transactions")).await.unwrap();
    c.find(Locator::Css(
        "form[action='/admin/transactions/resend-undelivered'] button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_url(&c, "resend all", |u| u.query() == Some("state=undelivered")).await;
    assert!(
        text_of(&c, "[role=status]")
            .await
            .contains("queued for delivery now")
    );
    c.refresh().await.unwrap();
    assert!(
        !text_of(&c, "main")
            .await
            .contains("queued for delivery now")
    );

    // The CLI's actions are audited too (here the function `admin set-password` calls).
    qiwi_gateway::db::audit::record_cli(
        &app.state.db,
        "password-change",
        "admin set-password".into(),
    )
    .await
    .unwrap();
    // The audit page lists both resends, by whom and from where.
    c.find(Locator::LinkText("Audit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "audit", |u| u.path() == "/admin/audit").await;
    let audit = text_of(&c, "#audit").await;
    assert!(
        audit.contains("resend-all") && audit.contains("resend"),
        "{audit}"
    );
    assert!(
        audit.contains("admin") && audit.contains("127.0.0.1"),
        "{audit}"
    );
    assert!(
        audit.contains("password-change") && audit.contains("cli:") && audit.contains("local"),
        "{audit}"
    );
    shot(&c, "audit").await;

    // The request log's result filter: the one malformed request got result 300.
    c.goto(&format!("{base}/admin/log")).await.unwrap();
    let form = c.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("result", "300").await.unwrap();
    form.submit().await.unwrap();
    wait_url(&c, "result filter", |u| {
        u.query().unwrap_or("").contains("result=300")
    })
    .await;
    assert_eq!(
        c.find_all(Locator::Css("table.list tbody tr"))
            .await
            .unwrap()
            .len(),
        1
    );

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
    assert!(
        text_of(&c, "#logged-out")
            .await
            .contains("You are logged out.")
    );
    assert!(
        text_of(&c, "#recover")
            .await
            .contains("qiwi-gateway admin set-password")
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

/// Built-in HTTPS from certificate files works in a browser: Chromium offers `h2, http/1.1`
/// in ALPN, and the listener (which serves HTTP/1.1 only) must pick `http/1.1`; when it
/// accepted `h2`, Chromium failed with net::ERR_CONNECTION_CLOSED.
#[tokio::test]
async fn the_login_page_opens_in_a_browser_over_https_from_certificate_files() {
    let Some(driver) = start_driver().await else {
        println!("skip: SKIP_BROWSER=1");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(|c| {
        c.admin.password = Some(Secret(PASSWORD.into()));
        c.server.tls = Some(qiwi_gateway::config::TlsFiles { cert, key });
    })
    .await;
    // The certificate is self-signed: the handshake and ALPN are what is tested here.
    let c = browser_with(&driver, &["--ignore-certificate-errors"]).await;
    c.goto(&format!(
        "https://localhost:{}/admin/login",
        app.addr.port()
    ))
    .await
    .unwrap();
    let form = c.form(Locator::Css("form.stack")).await.unwrap();
    form.set_by_name("username", "admin").await.unwrap();
    form.set_by_name("password", PASSWORD).await.unwrap();
    form.submit().await.unwrap();
    wait_url(&c, "login over https", |u| {
        u.scheme() == "https" && u.path() == "/admin"
    })
    .await;
    c.close().await.unwrap();
}

/// Accounts stored with invisible or direction-changing characters (from before accounts were
/// restricted, or through a custom `account_pattern`) are shown written out in the browser: an
/// account of U+202E + `RTL1234` does not display as `4321LTR`, and `123` + U+200B + `456` does
/// not pass for `123456`.
#[tokio::test]
async fn spoofing_characters_in_an_account_are_shown_as_text_in_the_browser() {
    let Some(driver) = start_driver().await else {
        println!("skip: SKIP_BROWSER=1");
        return;
    };
    let app = spawn_app_with(|c| c.admin.password = Some(Secret(PASSWORD.into()))).await;
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

/// Reconciliation in the browser: the operator uploads QIWI's registry (windows-1251, `;`),
/// sees the report with the payment missing here first, and downloads it as CSV.
#[tokio::test]
async fn operator_uploads_a_registry_sees_the_report_and_downloads_it() {
    let Some(driver) = start_driver().await else {
        println!("skip: SKIP_BROWSER=1");
        return;
    };
    let app = spawn_app_with(|c| c.admin.password = Some(Secret(PASSWORD.into()))).await;
    for (txn, account, sum, date) in [
        ("9001", "79000000001", "100.00", "20240301100000"),
        ("9002", "79000000002", "1500.50", "20240301110000"),
        ("9003", "79000000003", "200.00", "20240301120000"),
        ("9004", "79000000004", "300.00", "20240302090000"),
        ("9005", "79000000005", "50.00", "20240302100000"),
    ] {
        let q = format!("command=pay&txn_id={txn}&account={account}&sum={sum}&txn_date={date}");
        assert_eq!(app.query(&q).await.result(), 0, "{q}");
    }
    let registry = "Номер;txn_id;txn_date;account;sum\r\n\
                    1;0009001;01.03.2024 10:00:00;79000000001;100,00\r\n\
                    2;9002;01.03.2024 11:00:00;79000000002;1 500,50\r\n\
                    3;9003;01.03.2024 12:00:00;79000000003;250,00\r\n\
                    4;9004;02.03.2024 09:00:00;79000000099;300,00\r\n\
                    5;9100;02.03.2024 15:30:00;Иванов И. И.;999,99\r\n\
                    6;9101;02.03.2024 16:00:00;79000000007;сто\r\n\
                    Итого;;;;3150,49\r\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qiwi-registry-2024-03-01.csv");
    std::fs::write(&file, encoding_rs::WINDOWS_1251.encode(registry).0).unwrap();

    let c = browser(&driver).await;
    let base = &app.base;
    c.goto(&format!("{base}/admin/reconcile")).await.unwrap();
    let form = c.form(Locator::Css("form.stack")).await.unwrap();
    form.set_by_name("username", "admin").await.unwrap();
    form.set_by_name("password", PASSWORD).await.unwrap();
    form.submit().await.unwrap();
    wait_url(&c, "login", |u| u.path() == "/admin/reconcile").await;
    assert_eq!(text_of(&c, "h1").await, "Reconciliation");

    c.find(Locator::Css("input[name=registry]"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    c.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "report", |u| u.path() == "/admin/reconcile/1").await;
    let h1 = text_of(&c, "h1").await;
    assert!(
        h1.contains("qiwi-registry-2024-03-01.csv") && h1.contains("5 differences"),
        "{h1}"
    );
    // Missing here first, in its red panel, linking to the request log.
    let first = text_of(&c, "section.panel").await;
    assert!(
        first.starts_with("In QIWI's registry, missing here (1)"),
        "{first}"
    );
    assert!(
        first.contains("Иванов И. И.") && first.contains("999.99"),
        "{first}"
    );
    let link = c
        .find(Locator::Css("section.panel-bad a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap();
    assert_eq!(link.as_deref(), Some("/admin/log?txn=9100"));
    let main = text_of(&c, "main").await;
    for want in [
        "Here, missing from QIWI's registry (1)",
        "Different (same txn_id, other sum or account) (2)",
        "sum 250.00 in the registry, 200.00 here",
        "Malformed lines (1)",
        "Matched\n2 payments, 1600.50",
    ] {
        assert!(main.contains(want), "{want:?} in {main}");
    }
    shot(&c, "reconcile").await;

    // Download: the link, fetched with the browser's session.
    let href = c
        .find(Locator::LinkText("Download CSV"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(href, "/admin/reconcile/1/csv");
    let session = c.get_named_cookie("qg_session").await.unwrap();
    let csv = app
        .client
        .get(format!("{base}{href}"))
        .header("cookie", format!("qg_session={}", session.value()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[1],
        "missing_here,6,9100,,2024-03-02 12:30:00,Иванов И. И.,999.99,,,,the gateway has no payment with this txn_id"
    );
    assert_eq!(lines.len(), 1 + 5 + 1 + 3, "{csv}");

    // The list shows it with its verdict.
    c.find(Locator::LinkText("Reconciliation"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "list", |u| u.path() == "/admin/reconcile").await;
    let row = text_of(&c, "table.list tbody tr").await;
    assert!(
        row.contains("qiwi-registry-2024-03-01.csv") && row.contains("5 differences"),
        "{row}"
    );
    c.close().await.unwrap();
}

/// Seeds 60 days of history straight into the database (the triggers of migration 0007 keep
/// the charts' aggregates), so the charts have something to draw.
fn seed_history(app: &TestApp) {
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let now = chrono::Utc::now();
    let tx = conn.unchecked_transaction().unwrap();
    let mut n = 0i64;
    for hours_ago in 0..(60 * 24) {
        let t = now - chrono::TimeDelta::hours(hours_ago);
        let hour = chrono::Timelike::hour(&t);
        // Busier in the day than at night, busier on recent days.
        let base = if (8..22).contains(&hour) { 4 } else { 1 };
        let count = base + i64::from(hours_ago % 7 == 0) * 3 + i64::from(hours_ago < 48) * 2;
        for k in 0..count {
            n += 1;
            let at = (t - chrono::TimeDelta::minutes(k * 7))
                .format("%Y-%m-%d %H:%M:%S")
                .to_string();
            let sum_minor = 5_000 + (n * 7919) % 200_000;
            let delivered = !(hours_ago < 5 && k == 0);
            tx.execute(
                "INSERT INTO qiwi_transaction (account, code, sum, created_at, sum_minor, txn_date,
                                               status, attempts, delivered_at, last_attempt_at)
                 VALUES ('7900' || ?1, ?2, ?3, ?4, ?5, '20250101000000', ?6, 1, ?7, ?4)",
                rusqlite::params![
                    n % 50,
                    format!("88{n:08}"),
                    sum_minor as f64 / 100.0,
                    at,
                    sum_minor,
                    i64::from(delivered),
                    delivered.then_some(at.clone())
                ],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO qiwi_webhook_attempt (transaction_id, created_at, http_status, error,
                                                   duration_ms)
                 VALUES (last_insert_rowid(), ?1, ?2, ?3, 12)",
                rusqlite::params![
                    at,
                    if delivered { 200 } else { 503 },
                    (!delivered).then_some("HTTP 503")
                ],
            )
            .unwrap();
            if hours_ago < 48 {
                for result in [
                    0,
                    0,
                    if k == 1 { 300 } else { 0 },
                    if hours_ago % 9 == 0 { 1 } else { 0 },
                ] {
                    tx.execute(
                        "INSERT INTO qiwi_http_log (ip, url, method, headers, created_at, status,
                                                    txn_id, result)
                         VALUES ('79.142.16.5', '/payment', 'GET', '{}', ?1, 200, ?2, ?3)",
                        rusqlite::params![at, format!("88{n:08}"), result],
                    )
                    .unwrap();
                }
            }
        }
    }
    tx.commit().unwrap();
}

#[tokio::test]
async fn operator_sees_the_charts_and_follows_a_test_payment_through_every_step() {
    let Some(driver) = start_driver().await else {
        println!("skip: SKIP_BROWSER=1");
        return;
    };
    // The merchant's backend: an account check with display fields, and the webhook.
    let hooks = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let backend = spawn_backend(
        Router::new()
            .route(
                "/check",
                axum::routing::get(|| async {
                    axum::Json(serde_json::json!({"fields": {"disp1": "Test shop, order 42"}}))
                }),
            )
            .route(
                "/hook",
                post(
                    |State(h): State<Arc<std::sync::Mutex<Vec<String>>>>, body: String| async move {
                        h.lock().unwrap().push(body);
                        (StatusCode::OK, "thanks, stored")
                    },
                ),
            )
            .with_state(hooks.clone()),
    )
    .await;
    let app = spawn_app_with(|c| {
        c.admin.password = Some(Secret(PASSWORD.into()));
        c.check.url = Some(format!("{backend}/check").parse().unwrap());
        c.webhook.url = Some(format!("{backend}/hook").parse().unwrap());
    })
    .await;
    seed_history(&app);

    let c = browser(&driver).await;
    let base = &app.base;
    c.goto(&format!("{base}/admin")).await.unwrap();
    let form = c.form(Locator::Css("form.stack")).await.unwrap();
    form.set_by_name("username", "admin").await.unwrap();
    form.set_by_name("password", PASSWORD).await.unwrap();
    form.submit().await.unwrap();
    wait_url(&c, "login", |u| u.path() == "/admin").await;

    // Five charts, each an SVG with bars and a text summary.
    let figures = c.find_all(Locator::Css("figure.chart")).await.unwrap();
    assert_eq!(figures.len(), 5);
    let summaries = c.find_all(Locator::Css(".chart-summary")).await.unwrap();
    let mut texts = Vec::new();
    for s in &summaries {
        texts.push(s.text().await.unwrap());
    }
    assert!(
        texts[0].contains("payments in the last 48 hours"),
        "{texts:?}"
    );
    assert!(
        texts[1].contains("payments in the last 60 days"),
        "{texts:?}"
    );
    assert!(
        texts[2].contains("answers to QIWI in the last 48 hours"),
        "{texts:?}"
    );
    assert!(texts[3].contains("failed"), "{texts:?}");
    assert!(texts[4].contains("Undelivered payments now"), "{texts:?}");
    let bars = c
        .find_all(Locator::Css("figure.chart svg rect"))
        .await
        .unwrap();
    assert!(bars.len() > 100, "{} bars", bars.len());
    shot(&c, "dashboard-charts").await;
    shot_at(&c, "dashboard-charts-phone", 390).await;

    // A test payment, from the dashboard.
    c.find(Locator::Id("test-payment-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "test payment form", |u| {
        u.path() == "/admin/test-payment"
    })
    .await;
    let form = c.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("account", "test-42").await.unwrap();
    form.set_by_name("sum", "12.34").await.unwrap();
    form.submit().await.unwrap();
    wait_url(&c, "test payment run", |u| {
        u.path().starts_with("/admin/test-payment/9")
    })
    .await;
    let code = text_of(&c, "#test-code").await;
    // Reload until the webhook is acknowledged (the worker sends it at once).
    let start = Instant::now();
    loop {
        c.refresh().await.unwrap();
        if c.find(Locator::Css("#attempts")).await.is_ok()
            && app.count("SELECT COUNT(*) FROM qiwi_transaction WHERE status = 1 AND test = 1") == 1
        {
            c.refresh().await.unwrap();
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no webhook attempt shown"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = text_of(&c, "main").await;
    for step in [
        "1. Check backend HTTP 200",
        "Test shop, order 42",
        "2. QIWI check",
        "3. QIWI pay",
        "<prv_txn>",
        "<sum>12.34</sum>",
        "4. Stored payment stored, test",
        "5. Webhook to the merchant delivered",
        "HTTP 200",
        "thanks, stored",
    ] {
        assert!(page.contains(step), "{step} missing in:\n{page}");
    }
    shot(&c, "test-payment").await;

    // The merchant got "test": true with the original fields; the totals leave it out.
    let bodies = hooks.lock().unwrap().clone();
    let body = bodies
        .iter()
        .find(|b| b.contains(&code))
        .expect("the webhook arrived");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["test"], true);
    assert_eq!(v["sum"], 12.34);
    assert_eq!(v["account"], "test-42");
    let before = app.count(
        "SELECT COUNT(*) FROM qiwi_transaction WHERE test = 0 AND created_at >= date('now')",
    );
    c.goto(&format!("{base}/admin")).await.unwrap();
    let today = text_of(&c, "section.cards .card .card-value").await;
    assert_eq!(
        today,
        before.to_string(),
        "the test payment is not counted today"
    );
    c.close().await.unwrap();
}
