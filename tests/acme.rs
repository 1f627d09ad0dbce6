//! HTTPS certificates from a REAL ACME server: Let's Encrypt's test server Pebble (Debian
//! package `pebble`), run on loopback with `pebble-challtestsrv` as its DNS server (every name
//! resolves to 127.0.0.1, so Pebble really connects to the gateway for TLS-ALPN-01; validation
//! is not switched off).
//!
//! One test, in steps that build on each other: obtain, restart from the cache, renew while
//! serving (through a failed attempt), and an order the server refuses.

#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qiwi_gateway::app::{self, AppState};
use qiwi_gateway::config::Config;
use qiwi_gateway::ops::acme::AcmeSettings;
use qiwi_gateway::ops::certs::CertInfo;

const NAME: &str = "pay.gateway.test";
const DEADLINE: Duration = Duration::from_secs(60);

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a Pebble binary is: on PATH or in /usr/bin. Missing fails with the fix.
fn binary(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: this test needs Let's Encrypt's test server Pebble. \
             Install it with `apt-get install -y pebble` (Debian/Ubuntu; scripts/test does it \
             on CI), then run `cargo test --test acme` again."
        )
    })
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pebble and its DNS server, on free loopback ports, validating on `tls_port`.
struct Pebble {
    dir: PathBuf,
    api: u16,
    management: u16,
    dns: u16,
    pebble: Option<Proc>,
    _dns: Proc,
    /// How many times Pebble was started (each run logs to its own file).
    runs: usize,
}

impl Pebble {
    async fn start(dir: &Path, tls_port: u16) -> Pebble {
        let (pebble_bin, dns_bin) = (binary("pebble"), binary("pebble-challtestsrv"));
        // Pebble's own HTTPS (the ACME API) needs a certificate: a CA of ours signs it, and
        // the gateway trusts that CA through acme_ca_file.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble API test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("api-ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("api-cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("api-key.pem"), key.serialize_pem()).unwrap();

        let (dns, dns_management) = (free_udp_port(), free_tcp_port());
        let dns_log = dir.join("challtestsrv.log");
        let child = Command::new(dns_bin)
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(std::fs::File::create(&dns_log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&dns_log)
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        let dns_proc = Proc(child);
        wait_for_port(dns_management, "pebble-challtestsrv", &dns_log).await;
        // `elsewhere.gateway.test` points at an address nobody listens on: its validation fails.
        let added = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{dns_management}/add-a"))
            .body(r#"{"host":"elsewhere.gateway.test","addresses":["127.0.0.2"]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 200);

        let mut pebble = Pebble {
            dir: dir.to_owned(),
            api: free_tcp_port(),
            management: free_tcp_port(),
            dns,
            pebble: None,
            _dns: dns_proc,
            runs: 0,
        };
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{}", pebble.api),
                "managementListenAddress": format!("127.0.0.1:{}", pebble.management),
                "certificate": dir.join("api-cert.pem"),
                "privateKey": dir.join("api-key.pem"),
                "httpPort": free_tcp_port(),
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        pebble.run(&pebble_bin).await;
        pebble
    }

    /// Starts (or restarts) Pebble. A restart makes a new CA and forgets every account.
    async fn run(&mut self, bin: &Path) {
        self.runs += 1;
        let log = self.dir.join(format!("pebble-{}.log", self.runs));
        let child = Command::new(bin)
            .args(["-config", &self.dir.join("pebble.json").to_string_lossy()])
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Every order validates afresh, and no nonce is rejected at random.
            .env("PEBBLE_AUTHZREUSE", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        self.pebble = Some(Proc(child));
        wait_for_port(self.api, "pebble", &log).await;
        wait_for_port(self.management, "pebble (management)", &log).await;
    }

    fn stop(&mut self) {
        self.pebble = None;
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.api)
    }

    /// The current run's log.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("pebble-{}.log", self.runs))).unwrap()
    }

    /// Certificates the current run issued.
    fn issued(&self) -> usize {
        self.log().matches("Issued certificate serial").count()
    }

    /// The root that signs what the current run issues (`/roots/0` on the management port).
    async fn root(&self) -> reqwest::Certificate {
        let ca = std::fs::read(self.dir.join("api-ca.pem")).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        let pem = client
            .get(format!("https://127.0.0.1:{}/roots/0", self.management))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        reqwest::Certificate::from_pem(&pem).unwrap()
    }
}

/// The gateway's log lines, captured for the whole test binary.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn install() -> Logs {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("qiwi_gateway=info"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        logs
    }

    fn count(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }

    async fn wait_for(&self, text: &str, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.count(text) < n {
            assert!(
                Instant::now() < deadline,
                "no {n} log lines with {text:?} in {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A gateway started in this process.
struct Gateway {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    addr: SocketAddr,
}

impl Gateway {
    async fn start(dir: &Path, port: u16, settings: AcmeSettings) -> Gateway {
        let mut config = Config::default();
        config.server.listen_addr = format!("127.0.0.1:{port}").parse().unwrap();
        config.ops.database_path = dir.join("qiwi.db");
        config.server.acme = Some(settings);
        config.ops.timings.acme_retry = Duration::from_millis(200);
        // A kept-alive connection must outlive the renewal in step 3.
        config.server.header_timeout = Duration::from_secs(120);
        let state = AppState::new(config).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = app::start(state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        Gateway {
            shutdown: Some(tx),
            task: running.task,
            addr: running.addr,
        }
    }

    async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn settings(dir: &Path, pebble: &Pebble, domain: &str, renew_before_days: u64) -> AcmeSettings {
    AcmeSettings {
        domains: vec![domain.to_owned()],
        email: Some("ops@gateway.test".into()),
        directory_url: pebble.directory().parse().unwrap(),
        cache_dir: dir.join("acme"),
        ca_file: Some(dir.join("api-ca.pem")),
        renew_before: Duration::from_secs(renew_before_days * 86_400),
    }
}

/// A client that trusts only `root` and reaches `NAME` at the gateway.
fn client(root: &reqwest::Certificate, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([root.clone()])
        .resolve(NAME, addr)
        .tls_info(true)
        .build()
        .unwrap()
}

/// The certificate a response came with.
fn served(resp: &reqwest::Response) -> CertInfo {
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    CertInfo::from_der(info.peer_certificate().unwrap()).unwrap()
}

fn payment_url(addr: SocketAddr) -> String {
    format!(
        "https://{NAME}:{}/payment?command=check&txn_id=1&account=a&sum=1",
        addr.port()
    )
}

/// Calls /payment until the gateway answers with a certificate `client` trusts.
async fn payment_until_trusted(client: &reqwest::Client, addr: SocketAddr) -> CertInfo {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match client.get(payment_url(addr)).send().await {
            Ok(resp) => {
                let cert = served(&resp);
                assert_eq!(resp.status(), 200);
                // reqwest (http2 feature) offers `h2, http/1.1` as browsers do; the listener
                // serves HTTP/1.1 only, so that is what it must pick
                assert_eq!(resp.version(), reqwest::Version::HTTP_11);
                assert!(resp.text().await.unwrap().contains("<result>0</result>"));
                return cert;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "no trusted certificate within {DEADLINE:?}: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_pebble_are_obtained_cached_renewed_and_refusals_reported() {
    let logs = Logs::install();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_tcp_port();
    let mut pebble = Pebble::start(dir, port).await;

    // 1. First start: a placeholder is served, Pebble validates by TLS-ALPN-01 on the
    // gateway's port, and the certificate it issues is served to /payment.
    let gw = Gateway::start(dir, port, settings(dir, &pebble, NAME, 30)).await;
    let root1 = pebble.root().await;
    let first = payment_until_trusted(&client(&root1, gw.addr), gw.addr).await;
    assert_eq!(first.names, [NAME]);
    assert!(
        first.issuer.starts_with("Pebble Intermediate CA"),
        "{first:?}"
    );
    assert_eq!(pebble.issued(), 1);
    // Pebble connected to the gateway (the only challenge it answers is TLS-ALPN-01)
    assert!(pebble.log().contains("set VALID by completed challenge"));
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve(NAME, gw.addr)
        .build()
        .unwrap();
    let base = format!("https://{NAME}:{port}");
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let text = ready.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "tls: acme certificate for {NAME} from Pebble Intermediate CA"
        )),
        "{text}"
    );
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("qiwi_tls_certificate_expiry_seconds{source=\"acme\"}"))
        .unwrap_or_else(|| panic!("no expiry metric:\n{text}"));
    let left: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(left > 30 * 86_400, "{line}");
    gw.stop().await;

    // 2. Restart: the cached certificate is served at once, and Pebble is not asked again.
    let gw = Gateway::start(dir, port, settings(dir, &pebble, NAME, 30)).await;
    let resp = client(&root1, gw.addr)
        .get(payment_url(gw.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(served(&resp).serial, first.serial);
    assert_eq!(logs.count("serving the cached ACME certificate"), 1);
    gw.stop().await;
    assert_eq!(pebble.issued(), 1, "the restart ordered again");
    assert_eq!(logs.count("ordering a certificate"), 1);

    // 3. Renewal while serving: a margin longer than the certificate's life makes it due at
    // start. Pebble is down first: the attempt fails, the cached certificate stays served,
    // and the failure is logged and shown on /readyz; once Pebble is back (a new run: new CA,
    // the account forgotten) the retry gets a new certificate, served to new connections
    // while a connection opened before keeps working.
    pebble.stop();
    let gw = Gateway::start(dir, port, settings(dir, &pebble, NAME, 3650)).await;
    let old_client = client(&root1, gw.addr);
    let resp = old_client.get(payment_url(gw.addr)).send().await.unwrap();
    assert_eq!(served(&resp).serial, first.serial);
    logs.wait_for("cannot get a certificate from the ACME server", 1)
        .await;
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "a valid certificate is still served");
    let text = ready.text().await.unwrap();
    assert!(text.contains("last attempt failed"), "{text}");
    let resp = old_client.get(payment_url(gw.addr)).send().await.unwrap();
    assert_eq!(served(&resp).serial, first.serial);

    pebble.run(&binary("pebble")).await;
    let root2 = pebble.root().await;
    let renewed = payment_until_trusted(&client(&root2, gw.addr), gw.addr).await;
    assert_ne!(renewed.serial, first.serial);
    assert_eq!(renewed.names, [NAME]);
    assert_eq!(pebble.issued(), 1);
    assert_eq!(logs.count("does not know the cached account"), 1);
    // the kept-alive connection from before the renewal still answers, on its old session
    let resp = old_client.get(payment_url(gw.addr)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(served(&resp).serial, first.serial);
    let text = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("last attempt failed"), "{text}");
    gw.stop().await;

    // 4. A refused order: the name resolves elsewhere, so Pebble's validation fails. The
    // gateway says why in one line per attempt, keeps serving health checks (HTTPS with its
    // placeholder), and is not ready.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(dir.join("api-ca.pem"), other.join("api-ca.pem")).unwrap();
    let errors_before = logs.count("cannot get a certificate from the ACME server");
    let gw = Gateway::start(
        &other,
        port,
        settings(&other, &pebble, "elsewhere.gateway.test", 30),
    )
    .await;
    logs.wait_for("the ACME server refused", 1).await;
    let refused = String::from_utf8_lossy(&logs.0.lock().unwrap())
        .lines()
        .find(|l| l.contains("the ACME server refused"))
        .unwrap()
        .to_owned();
    assert!(
        refused.contains("elsewhere.gateway.test")
            && refused.contains("tls-alpn-01")
            && refused.contains("placeholder"),
        "{refused}"
    );
    assert!(logs.count("cannot get a certificate from the ACME server") > errors_before);
    let placeholder = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let health = placeholder
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = placeholder
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    assert!(
        text.contains("tls: no acme certificate yet") && text.contains("elsewhere.gateway.test"),
        "{text}"
    );
    gw.stop().await;
}
