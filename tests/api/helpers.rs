//! `spawn_app()` and friends: start the real gateway and real peers on loopback.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use qiwi_gateway::app::{self, AppState};
use qiwi_gateway::config::Config;
use tokio::sync::oneshot;

/// A running gateway with its own temporary database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub db_path: PathBuf,
    pub state: AppState,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// The configuration tests start from: loopback, port 0, a temporary database.
pub fn test_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.server.listen_addr = "127.0.0.1:0".parse().unwrap();
    config.ops.database_path = dir.path().join("qiwi.db");
    // Tests drive hundreds of concurrent connections from 127.0.0.1; the per-address cap is
    // tested where a test sets it (tests/api/limits.rs).
    config.server.max_connections_per_ip = 0;
    config
}

/// Starts the gateway on defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the gateway after `tweak` adjusts its configuration.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    tweak(&mut config);
    start_in(dir, config).await
}

/// Starts the gateway with `config` (whose database lives in `dir`).
pub async fn start_in(dir: tempfile::TempDir, config: Config) -> TestApp {
    let db_path = config.ops.database_path.clone();
    let state = AppState::new(config).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let running = app::start(state.clone(), async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    TestApp {
        addr: running.addr,
        base: format!("http://{}", running.addr),
        db_path,
        state,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        shutdown: Some(tx),
        task: Some(running.task),
        _dir: dir,
    }
}

impl TestApp {
    /// `GET /payment?{query}`.
    pub async fn get_payment(&self, query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/payment?{query}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// `POST /payment` with a form body.
    pub async fn post_payment(&self, body: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/payment", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// A protocol request by GET, its answer parsed.
    pub async fn query(&self, query: &str) -> XmlAnswer {
        let resp = self.get_payment(query).await;
        XmlAnswer::from_response(resp).await
    }

    /// `command=pay` with a fixed `txn_date`.
    pub async fn pay(&self, txn_id: &str, account: &str, sum: &str) -> XmlAnswer {
        self.query(&format!(
            "command=pay&txn_id={txn_id}&account={account}&sum={sum}&txn_date=20240101120000"
        ))
        .await
    }

    /// `command=check`.
    pub async fn check(&self, txn_id: &str, account: &str, sum: &str) -> XmlAnswer {
        self.query(&format!(
            "command=check&txn_id={txn_id}&account={account}&sum={sum}"
        ))
        .await
    }

    /// A read-only connection to inspect the database with plain SQL.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            &self.db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    /// One number from SQL.
    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The value of one Prometheus sample, `name{labels}` exactly as `/metrics` writes it,
    /// from the gateway's own registry; 0 when it has no sample yet.
    pub fn metric(&self, sample: &str) -> f64 {
        self.state
            .metrics
            .render()
            .lines()
            .find_map(|l| {
                l.strip_prefix(sample)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self._dir, dir)
    }
}

/// A parsed protocol answer: HTTP status, content type, and each XML element's text.
#[derive(Debug)]
pub struct XmlAnswer {
    pub status: u16,
    pub content_type: String,
    pub fields: HashMap<String, String>,
    pub raw: String,
}

impl XmlAnswer {
    pub async fn from_response(resp: reqwest::Response) -> XmlAnswer {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let raw = resp.text().await.unwrap();
        XmlAnswer {
            status,
            content_type,
            fields: parse_xml(&raw),
            raw,
        }
    }

    /// The `<result>` code.
    pub fn result(&self) -> u16 {
        self.fields
            .get("result")
            .unwrap_or_else(|| panic!("no result in {}", self.raw))
            .parse()
            .unwrap()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Parses the answer strictly: panics unless it is well-formed XML with a `<response>` root.
pub fn parse_xml(xml: &str) -> HashMap<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut fields = HashMap::new();
    let mut current: Option<String> = None;
    let mut depth = 0;
    let mut root = None;
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("bad XML {e}: {xml}"))
        {
            Event::Start(e) => {
                let name = e.name().as_ref().to_owned();
                if depth == 0 {
                    root = Some(name.clone());
                }
                depth += 1;
                current = Some(name);
            }
            Event::End(_) => {
                depth -= 1;
                current = None;
            }
            Event::Text(t) => {
                if let Some(name) = &current {
                    let text = t.xml10_content().into_owned();
                    fields
                        .entry(name.clone())
                        .or_insert_with(String::new)
                        .push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(name) = &current {
                    let ch = match r.resolve_char_ref().unwrap() {
                        Some(c) => c,
                        None => match &*r.into_inner() {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "quot" => '"',
                            "apos" => '\'',
                            other => panic!("unexpected entity {other}"),
                        },
                    };
                    fields
                        .entry(name.clone())
                        .or_insert_with(String::new)
                        .push(ch);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced XML: {xml}");
    assert_eq!(
        root.as_deref(),
        Some("response"),
        "root must be <response>: {xml}"
    );
    fields
}

/// Serves `router` on 127.0.0.1:0 (a merchant backend) and returns its base URL.
pub async fn spawn_backend(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// A loopback address nobody listens on (bound, then closed).
pub async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/check")
}
