//! HTTPS certificates from an ACME server (RFC 8555): Let's Encrypt by default, obtained and
//! renewed by the gateway itself.
//!
//! The client is `instant-acme`; the challenge is TLS-ALPN-01 (RFC 8737), answered on the
//! HTTPS listener itself: a handshake offering only the `acme-tls/1` protocol gets the challenge
//! certificate (made with `rcgen`), every other handshake the served certificate. So the
//! gateway alone on a host with port 443 open is enough; no port 80 and no DNS access.
//!
//! The account key and the certificate with its key are kept in `acme_cache_dir` (files
//! readable by the owner only), one certificate per ACME directory and set of names, so a
//! restart serves the cached certificate without asking the server again. Until a first
//! certificate arrives a self-signed placeholder is served, so the listener and `/healthz`
//! work from the first second (`/readyz` says 503 until the real one is there). Renewal runs
//! while serving: the new certificate is swapped into the resolver and served to new
//! handshakes; open connections keep theirs. A failure keeps the old certificate and is
//! retried with backoff.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::certs::{CertInfo, Source, TlsStatus};

/// Let's Encrypt's production directory, the default `acme_directory_url`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits): for a
/// first try of a new deployment.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 section 6.2).
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The longest wait between two attempts after failures.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// The validated `acme_*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The DNS names the certificate covers (lower case, no wildcards), at least one.
    pub domains: Vec<String>,
    /// The account's contact address, if given (Let's Encrypt mails expiry problems to it).
    pub email: Option<String>,
    /// The ACME server's directory URL (https).
    pub directory_url: Url,
    /// Where the account and certificates are kept.
    pub cache_dir: PathBuf,
    /// The CA that signs the ACME server's own HTTPS certificate, trusted instead of the
    /// system's roots (test and private ACME servers).
    pub ca_file: Option<PathBuf>,
    /// Renew when the certificate has less than this left.
    pub renew_before: Duration,
}

/// The `acme_*` keys as written, for [`AcmeSettings::validate`].
pub struct RawAcme<'a> {
    /// `acme_domains`: entries separated by commas or spaces.
    pub domains: &'a [String],
    /// `acme_email`.
    pub email: Option<String>,
    /// `acme_directory_url`.
    pub directory_url: &'a str,
    /// `acme_cache_dir`, unset: `acme` beside the database.
    pub cache_dir: Option<PathBuf>,
    /// `acme_ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `acme_renew_before_days`.
    pub renew_before_days: u64,
    /// `database_path`, whose folder holds the default cache.
    pub database_path: &'a Path,
}

impl AcmeSettings {
    /// `None` when `acme_domains` is empty (then no other `acme_*` key may be set, save the
    /// directory URL and renewal margin, which have defaults); else the settings. Errors name
    /// the key and what is wrong.
    pub fn validate(raw: RawAcme<'_>) -> Result<Option<AcmeSettings>, (&'static str, String)> {
        let domains = raw
            .domains
            .iter()
            .flat_map(|s| s.split([',', ' ', '\t', '\n']))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|d| parse_domain(d).map_err(|e| ("acme_domains", e)))
            .collect::<Result<Vec<_>, _>>()?;
        if domains.is_empty() {
            for (key, set) in [
                ("acme_email", raw.email.is_some()),
                ("acme_cache_dir", raw.cache_dir.is_some()),
                ("acme_ca_file", raw.ca_file.is_some()),
            ] {
                if set {
                    return Err((key, "is set but acme_domains is empty".into()));
                }
            }
            return Ok(None);
        }
        if let Some(email) = &raw.email {
            let ok = email.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty() && host.contains('.') && !email.contains([' ', ',', '\n'])
            });
            if !ok {
                return Err((
                    "acme_email",
                    format!(
                        "`{}` is not an address like ops@example.ru",
                        email.escape_debug()
                    ),
                ));
            }
        }
        let directory_url =
            Url::parse(raw.directory_url).map_err(|e| ("acme_directory_url", e.to_string()))?;
        if directory_url.scheme() != "https" {
            return Err((
                "acme_directory_url",
                "must be an https URL (RFC 8555 requires HTTPS)".into(),
            ));
        }
        if !(1..=3650).contains(&raw.renew_before_days) {
            return Err(("acme_renew_before_days", "must be 1 to 3650".into()));
        }
        let cache_dir = raw.cache_dir.unwrap_or_else(|| {
            raw.database_path
                .parent()
                .unwrap_or(Path::new(""))
                .join("acme")
        });
        Ok(Some(AcmeSettings {
            domains,
            email: raw.email,
            directory_url,
            cache_dir,
            ca_file: raw.ca_file,
            renew_before: Duration::from_secs(raw.renew_before_days * 86_400),
        }))
    }

    /// The cached account's file: one per ACME directory.
    fn account_path(&self) -> PathBuf {
        self.cache_dir.join(format!(
            "account-{}.json",
            short_hash(self.directory_url.as_str())
        ))
    }

    /// The cached certificate's file (chain and key, PEM): one per directory and set of names.
    fn cert_path(&self) -> PathBuf {
        let mut names = self.domains.clone();
        names.sort();
        let key = format!("{}\n{}", self.directory_url, names.join(","));
        self.cache_dir
            .join(format!("{}-{}.pem", names[0], short_hash(&key)))
    }
}

/// What `check-config` verifies before a start: the cache folder can be created and written,
/// and `acme_ca_file` holds a certificate. Each entry: what was checked, and the problem.
pub fn preflight(settings: &AcmeSettings) -> Vec<(String, Result<(), String>)> {
    let dir = &settings.cache_dir;
    let probe = dir.join(".write-test");
    let writable = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("{e} (set acme_cache_dir to a writable folder)"));
    let mut checks = vec![(
        format!("ACME cache folder {} is writable", dir.display()),
        writable,
    )];
    if let Some(ca) = &settings.ca_file {
        let r = std::fs::read(ca)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                CertificateDer::pem_slice_iter(&pem)
                    .next()
                    .ok_or_else(|| "no PEM certificate in it".to_owned())?
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        checks.push((
            format!("acme_ca_file {} holds a certificate", ca.display()),
            r,
        ));
    }
    checks
}

/// A DNS name TLS-ALPN-01 can validate: letters, digits and hyphens in dot-separated labels of
/// 1-63 characters, 253 at most, not an IP address, no wildcard (RFC 8737 section 3 and
/// RFC 1035 section 2.3.1). Returned in lower case.
fn parse_domain(text: &str) -> Result<String, String> {
    let d = text.trim_end_matches('.').to_ascii_lowercase();
    let shown = text.escape_debug();
    if d.starts_with("*.") {
        return Err(format!(
            "`{shown}`: wildcards need the DNS-01 challenge; list each name instead"
        ));
    }
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "`{shown}` is an IP address; a certificate is issued for a DNS name"
        ));
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.len() > 253 || !d.split('.').all(label_ok) {
        return Err(format!(
            "`{shown}` is not a DNS name like pay.example.ru (labels of letters, digits and \
             hyphens; internationalised names in their xn-- form)"
        ));
    }
    Ok(d)
}

fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Picks the certificate for each TLS handshake: the challenge certificate for a validation
/// handshake (ALPN `acme-tls/1`), else the served certificate.
#[derive(Debug)]
pub struct Resolver {
    served: RwLock<Arc<CertifiedKey>>,
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if validation {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned();
        }
        Some(
            self.served
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

impl Resolver {
    fn serve(&self, key: Arc<CertifiedKey>) {
        *self.served.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    fn challenges(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        self.challenges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why getting a certificate failed, said in one line.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The ACME server could not be reached or answered something unusable.
    #[error("{0}")]
    Acme(instant_acme::Error),
    /// The server refused: a name it will not issue for, a validation that failed (the
    /// order became invalid), a rate limit. Its problem detail and type.
    #[error("the ACME server refused: {0}")]
    Refused(String),
    /// The cache folder or a file in it cannot be read or written.
    #[error("{0}")]
    Cache(String),
    /// A certificate or key that rustls or rcgen refuses.
    #[error("{0}")]
    Certificate(String),
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        match e {
            instant_acme::Error::Api(p) => AcmeError::Refused(problem_text(&p)),
            e => AcmeError::Acme(e),
        }
    }
}

/// An RFC 7807 problem in one line: its detail and short type (`rejectedIdentifier`).
fn problem_text(p: &instant_acme::Problem) -> String {
    let kind = p
        .r#type
        .as_deref()
        .map(|t| t.trim_start_matches("urn:ietf:params:acme:error:"));
    let mut text = format!(
        "{} ({})",
        p.detail.as_deref().unwrap_or("no detail"),
        kind.unwrap_or("no type")
    );
    for sub in &p.subproblems {
        text.push_str(&format!("; {sub}"));
    }
    text
}

/// A certificate chain and its key, ready to serve.
struct Issued {
    key: Arc<CertifiedKey>,
    info: CertInfo,
}

fn certified(chain_pem: &str, key_pem: &str) -> Result<Issued, AcmeError> {
    let bad = |e: String| AcmeError::Certificate(e);
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("unreadable certificate chain: {e}")))?;
    let first = chain.first().ok_or_else(|| bad("an empty chain".into()))?;
    let info = CertInfo::from_der(first).map_err(bad)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| bad(format!("unreadable private key: {e}")))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| bad(format!("the key does not fit the certificate: {e}")))?;
    Ok(Issued {
        key: Arc::new(key),
        info,
    })
}

/// A self-signed certificate for `names`, served until the first real one arrives.
fn placeholder(names: &[String]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let bad = |e: rcgen::Error| AcmeError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(bad)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "qiwi-gateway placeholder");
    let cert = params.self_signed(&key).map_err(bad)?;
    Ok(certified(&cert.pem(), &key.serialize_pem())?.key)
}

/// The TLS-ALPN-01 certificate for `name`: self-signed, carrying the key authorization's
/// SHA-256 digest in the critical acmeIdentifier extension (RFC 8737 section 3).
fn challenge_cert(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let bad = |e: rcgen::Error| AcmeError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(bad)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(bad)?;
    // Not `certified`: rustls's key check parses the certificate, and refuses the critical
    // extension webpki does not know.
    let der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| AcmeError::Certificate(e.to_owned()))?;
    let signing = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| AcmeError::Certificate(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// Writes `text` to `path` through a temporary file and a rename (a crash leaves the old file
/// or the new one), readable by the owner only: it holds private keys.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    {
        use std::io::Write as _;
        let mut f = options.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The HTTPS side of ACME: the rustls configuration to serve, and the manager to run.
pub struct Acme {
    settings: AcmeSettings,
    resolver: Arc<Resolver>,
    status: Arc<TlsStatus>,
    /// The certificate being served, once a real one is.
    current: Option<CertInfo>,
    account: Option<Account>,
}

impl Acme {
    /// Prepares the cache folder and what to serve first: the cached certificate when there
    /// is one (even one due for renewal, while it is valid), else a self-signed placeholder.
    /// Errors: the cache folder cannot be created or the placeholder cannot be made.
    pub fn new(settings: AcmeSettings, status: Arc<TlsStatus>) -> Result<Acme, AcmeError> {
        std::fs::create_dir_all(&settings.cache_dir).map_err(|e| {
            AcmeError::Cache(format!(
                "cannot create acme_cache_dir {}: {e}",
                settings.cache_dir.display()
            ))
        })?;
        let cached = Self::load_cached(&settings);
        let (first, current) = match cached {
            Some(issued) => {
                tracing::info!(
                    names = %issued.info.names.join(","),
                    issuer = %issued.info.issuer,
                    serial = %issued.info.serial,
                    not_after = %issued.info.not_after,
                    "serving the cached ACME certificate"
                );
                status.served(Source::Acme, issued.info.clone());
                (issued.key, Some(issued.info))
            }
            None => {
                status.update(|s| {
                    s.source = Some(Source::Acme);
                    s.placeholder = true;
                    s.wanted = settings.domains.clone();
                });
                (placeholder(&settings.domains)?, None)
            }
        };
        Ok(Acme {
            settings,
            resolver: Arc::new(Resolver {
                served: RwLock::new(first),
                challenges: Mutex::default(),
            }),
            status,
            current,
            account: None,
        })
    }

    fn load_cached(settings: &AcmeSettings) -> Option<Issued> {
        let path = settings.cert_path();
        let pem = std::fs::read_to_string(&path).ok()?;
        match certified(&pem, &pem) {
            Ok(issued) if issued.info.not_after > Utc::now() => Some(issued),
            Ok(_) => {
                tracing::info!(path = %path.display(), "the cached ACME certificate has expired");
                None
            }
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "the cached ACME certificate is unusable; ordering a new one"
                );
                None
            }
        }
    }

    /// The rustls configuration for the HTTPS listener ([`super::tls::server_config`]): what it
    /// serves (HTTP/1.1) and `acme-tls/1`.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, AcmeError> {
        super::tls::server_config(self.resolver.clone(), &[ACME_TLS_ALPN])
            .map_err(|e| AcmeError::Certificate(e.to_string()))
    }

    /// When the served certificate is due for renewal; `None`: now (none is served yet).
    fn due(&self) -> Option<DateTime<Utc>> {
        let c = self.current.as_ref()?;
        let before = chrono::TimeDelta::from_std(self.settings.renew_before).ok()?;
        Some(c.not_after - before)
    }

    /// Gets certificates until `stop`: orders one when none is served or the served one is
    /// due, waits until the next is due; after a failure keeps serving what it serves, logs
    /// one error line, and retries after `retry`, doubled after each failure up to an hour.
    pub async fn run(mut self, retry: Duration, stop: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let now = Utc::now();
            let wait = match self.due() {
                Some(due) if due > now => (due - now).to_std().unwrap_or(Duration::ZERO),
                _ => match tokio::select! {
                    // An order in flight is dropped at shutdown: the next start orders again.
                    () = stop.cancelled() => return,
                    r = self.renew() => r,
                } {
                    Ok(()) => {
                        failures = 0;
                        // A margin as long as the certificate's lifetime would renew in a
                        // loop: the next renewal waits at least half the lifetime.
                        let c = self.current.as_ref().map(|c| (c.not_before, c.not_after));
                        let due = self.due().unwrap_or(now);
                        let floor = c.map_or(now, |(from, to)| Utc::now() + (to - from) / 2);
                        if due < floor {
                            tracing::warn!(
                                "acme_renew_before_days is longer than the certificate's \
                                 lifetime: the next renewal waits half the lifetime"
                            );
                        }
                        (due.max(floor) - Utc::now())
                            .to_std()
                            .unwrap_or(Duration::ZERO)
                    }
                    Err(e) => {
                        let wait = retry
                            .saturating_mul(2u32.saturating_pow(failures.min(16)))
                            .min(MAX_RETRY.max(retry));
                        failures = failures.saturating_add(1);
                        let serving = match &self.current {
                            Some(c) => {
                                format!("still serving the certificate valid until {}", c.not_after)
                            }
                            None => "serving a self-signed placeholder meanwhile".to_owned(),
                        };
                        // Status first: whoever reads the log line sees it on /readyz.
                        let message = e.to_string();
                        self.status.update(|s| s.problem = Some(message));
                        tracing::error!(
                            domains = %self.settings.domains.join(","),
                            directory = %self.settings.directory_url,
                            retry_in = ?wait,
                            "cannot get a certificate from the ACME server: {e}; {serving}"
                        );
                        wait
                    }
                },
            };
            let next = Utc::now() + chrono::TimeDelta::from_std(wait).unwrap_or_default();
            self.status.update(|s| s.next_attempt = Some(next));
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The ACME account: from the cache, else created (and cached).
    async fn account(&mut self, fresh: bool) -> Result<Account, AcmeError> {
        if !fresh && let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let builder = || match &self.settings.ca_file {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        let path = self.settings.account_path();
        if !fresh && let Ok(text) = std::fs::read_to_string(&path) {
            let credentials: AccountCredentials = serde_json::from_str(&text)
                .map_err(|e| AcmeError::Cache(format!("{}: {e}", path.display())))?;
            let account = builder()?.from_credentials(credentials).await?;
            self.account = Some(account.clone());
            return Ok(account);
        }
        let contact = self.settings.email.as_ref().map(|e| format!("mailto:{e}"));
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory_url.to_string(),
                None,
            )
            .await?;
        let text =
            serde_json::to_string(&credentials).map_err(|e| AcmeError::Cache(e.to_string()))?;
        write_private(&path, &text)
            .map_err(|e| AcmeError::Cache(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!(id = account.id(), "created an ACME account");
        self.account = Some(account.clone());
        Ok(account)
    }

    /// One order: validates every name by TLS-ALPN-01, finalizes, caches and serves the
    /// certificate.
    async fn renew(&mut self) -> Result<(), AcmeError> {
        let identifiers: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .cloned()
            .map(Identifier::Dns)
            .collect();
        tracing::info!(
            domains = %self.settings.domains.join(","),
            directory = %self.settings.directory_url,
            "ordering a certificate from the ACME server"
        );
        let account = self.account(false).await?;
        let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
            Err(instant_acme::Error::Api(p))
                if p.r#type.as_deref()
                    == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
            {
                // The server forgot the account (a test server restarted, or it was
                // deactivated): make a new one.
                tracing::warn!("the ACME server does not know the cached account; creating one");
                let account = self.account(true).await?;
                account.new_order(&NewOrder::new(&identifiers)).await?
            }
            other => other?,
        };
        let result = self.validate_and_finish(&mut order).await;
        self.resolver.challenges().clear();
        let (chain, key) = result?;
        let issued = certified(&chain, &key)?;
        let path = self.settings.cert_path();
        write_private(&path, &format!("{chain}\n{key}"))
            .map_err(|e| AcmeError::Cache(format!("cannot write {}: {e}", path.display())))?;
        // Status first: whoever sees the new certificate served also sees it on /readyz.
        self.status.served(Source::Acme, issued.info.clone());
        self.resolver.serve(issued.key);
        tracing::info!(
            names = %issued.info.names.join(","),
            issuer = %issued.info.issuer,
            serial = %issued.info.serial,
            not_after = %issued.info.not_after,
            "obtained a certificate from the ACME server; serving it to new connections"
        );
        self.current = Some(issued.info);
        Ok(())
    }

    /// Answers every pending authorization, then finalizes: the chain and key as PEM.
    async fn validate_and_finish(
        &self,
        order: &mut instant_acme::Order,
    ) -> Result<(String, String), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Refused(format!(
                        "the authorization of {} is {other:?}",
                        authz.identifier()
                    )));
                }
            }
            let name = authz.identifier().to_string();
            let mut challenge = authz.challenge(ChallengeType::TlsAlpn01).ok_or_else(|| {
                AcmeError::Refused(format!("no tls-alpn-01 challenge offered for {name}"))
            })?;
            let digest = challenge.key_authorization().digest();
            let cert = challenge_cert(&name, digest.as_ref())?;
            self.resolver
                .challenges()
                .insert(name.to_ascii_lowercase(), cert);
            challenge.set_ready().await?;
        }
        let polling = RetryPolicy::default().timeout(Duration::from_secs(120));
        // instant-acme reports an invalid order as the order's problem; without one, the
        // challenges' errors say why.
        let status = order.poll_ready(&polling).await?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Refused(self.why_invalid(order, status).await));
        }
        let key = order.finalize().await?;
        let chain = order.poll_certificate(&polling).await?;
        Ok((chain, key))
    }

    /// The validation errors of an order that did not become ready, in one line.
    async fn why_invalid(&self, order: &mut instant_acme::Order, status: OrderStatus) -> String {
        let mut reasons = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            let name = authz.identifier().to_string();
            for c in &authz.challenges {
                if let Some(p) = &c.error {
                    reasons.push(format!("{name}: {}", problem_text(p)));
                }
            }
        }
        if reasons.is_empty() {
            format!("the order is {status:?}")
        } else {
            reasons.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(domains: &'a [String], db: &'a Path) -> RawAcme<'a> {
        RawAcme {
            domains,
            email: None,
            directory_url: LETS_ENCRYPT,
            cache_dir: None,
            ca_file: None,
            renew_before_days: 30,
            database_path: db,
        }
    }

    #[test]
    fn domains_are_dns_names_and_the_cache_sits_beside_the_database() {
        let db = Path::new("/var/lib/qiwi/qiwi.db");
        let list = vec!["Pay.Example.ru, shop.example.ru.".to_owned()];
        let s = AcmeSettings::validate(raw(&list, db)).unwrap().unwrap();
        assert_eq!(s.domains, ["pay.example.ru", "shop.example.ru"]);
        assert_eq!(s.cache_dir, Path::new("/var/lib/qiwi/acme"));
        assert_eq!(s.renew_before, Duration::from_secs(30 * 86_400));
        assert!(AcmeSettings::validate(raw(&[], db)).unwrap().is_none());
        for bad in [
            "invalid..name",
            "*.example.ru",
            "10.0.0.1",
            "-a.ru",
            "a_b.ru",
            "пример.рф",
        ] {
            let list = vec![bad.to_owned()];
            let (key, reason) = AcmeSettings::validate(raw(&list, db)).unwrap_err();
            assert_eq!(key, "acme_domains");
            assert!(reason.contains(&bad.escape_debug().to_string()), "{reason}");
        }
        let list = vec!["pay.example.ru".to_owned()];
        let mut r = raw(&list, db);
        r.directory_url = "http://acme.example/dir";
        assert_eq!(
            AcmeSettings::validate(r).unwrap_err().0,
            "acme_directory_url"
        );
        let mut r = raw(&list, db);
        r.email = Some("not-an-address".into());
        assert_eq!(AcmeSettings::validate(r).unwrap_err().0, "acme_email");
        let mut r = raw(&[], db);
        r.email = Some("ops@example.ru".into());
        assert_eq!(AcmeSettings::validate(r).unwrap_err().0, "acme_email");
    }

    #[test]
    fn the_cache_file_depends_on_the_directory_and_the_set_of_names() {
        let db = Path::new("qiwi.db");
        let a = vec!["b.example, a.example".to_owned()];
        let b = vec!["a.example b.example".to_owned()];
        let sa = AcmeSettings::validate(raw(&a, db)).unwrap().unwrap();
        let sb = AcmeSettings::validate(raw(&b, db)).unwrap().unwrap();
        assert_eq!(sa.cert_path(), sb.cert_path());
        assert!(sa.cert_path().starts_with("acme"));
        let mut r = raw(&a, db);
        r.directory_url = LETS_ENCRYPT_STAGING;
        let staging = AcmeSettings::validate(r).unwrap().unwrap();
        assert_ne!(sa.cert_path(), staging.cert_path());
        assert_ne!(sa.account_path(), staging.account_path());
    }
}
