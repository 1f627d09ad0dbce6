//! Built-in HTTPS: the rustls configuration every HTTPS listener uses ([`server_config`]), and
//! the certificate and key from PEM files, reloaded on SIGHUP or when the files change,
//! without closing the listener (connections already open keep their session).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

/// The application protocols an HTTPS listener offers in ALPN (RFC 7301), in order of
/// preference: exactly what it serves. The server runs hyper with `http1_only` (QIWI speaks
/// HTTP/1.1, and HTTP/2 streams would escape the header timeout), so `h2` is never offered: a
/// client told `h2` (browsers, curl) would speak HTTP/2 to an HTTP/1.1 server and fail.
pub const HTTP_ALPN: [&[u8]; 2] = [b"http/1.1", b"http/1.0"];

/// The rustls configuration of every HTTPS listener the gateway runs (certificate files, their
/// reloads, ACME): aws-lc-rs, rustls's safe default protocol versions, no client certificates,
/// the certificate `certs` picks per handshake, and ALPN offering [`HTTP_ALPN`] then
/// `extra_alpn` (ACME's `acme-tls/1`).
///
/// Errors: the provider does not support the default protocol versions (cannot happen with
/// aws-lc-rs, reported rather than assumed).
pub fn server_config(
    certs: Arc<dyn ResolvesServerCert>,
    extra_alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = HTTP_ALPN
        .iter()
        .chain(extra_alpn)
        .map(|p| p.to_vec())
        .collect();
    Ok(Arc::new(config))
}

/// PEM files of the built-in HTTPS listener (`tls_cert_file`, `tls_key_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Loads the certificate chain and key into the listener's configuration ([`server_config`]).
///
/// Errors: a file is missing or unreadable (naming its key and environment variable), holds no
/// PEM certificate or key, or the key does not belong to the certificate.
pub async fn load(files: &TlsFiles) -> anyhow::Result<RustlsConfig> {
    // Which file is missing, said before rustls says "No such file" about one of the two.
    for (path, key, env) in [
        (&files.cert, "tls_cert_file", "TLS_CERT_FILE"),
        (&files.key, "tls_key_file", "TLS_KEY_FILE"),
    ] {
        if let Some(problem) = super::startup::unreadable_file(path, key, env) {
            anyhow::bail!(problem);
        }
    }
    Ok(RustlsConfig::from_config(read(files).await?))
}

/// Reads and checks the pair (off the runtime's threads) into a [`server_config`].
async fn read(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let owned = files.clone();
    tokio::task::spawn_blocking(move || read_blocking(&owned))
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load the TLS certificate {} and key {}: {e}",
                files.cert.display(),
                files.key.display()
            )
        })
}

fn read_blocking(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("unreadable certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("no PEM certificate in the certificate file".into());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("unreadable private key: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    server_config(Arc::new(SingleCertAndKey::from(certified)), &[]).map_err(|e| e.to_string())
}

/// What tells a file changed: its modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reloads `config` from `files` on SIGHUP, or when either file looks different at a look
/// every `every`, until `stop`. A pair that does not load (a key written before its
/// certificate, say) is logged and the previous certificate kept; the next change retries.
///
/// The SIGHUP handler is installed, and the files' current state noted, before this returns
/// (so a SIGHUP right after start-up cannot hit the default action, which ends the process,
/// and a file changed right after start-up is not missed); must be called on the runtime.
/// Each certificate loaded is noted in `status` (its names and expiry).
pub fn watch(
    config: RustlsConfig,
    files: TlsFiles,
    every: Duration,
    stop: CancellationToken,
    status: std::sync::Arc<super::certs::TlsStatus>,
) -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; certificate files are still watched");
        })
        .ok();
    // Stamped now, not at the future's first poll: a file replaced between this call and that
    // poll (the runtime may be busy) would otherwise become the baseline and never be loaded.
    let mut last = (stamp(&files.cert), stamp(&files.key));
    async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            let reason = tokio::select! {
                () = stop.cancelled() => return,
                () = hangup => "SIGHUP",
                _ = tick.tick() => {
                    let now = (stamp(&files.cert), stamp(&files.key));
                    if now == last {
                        continue;
                    }
                    last = now;
                    "the files changed"
                }
            };
            match read(&files).await {
                Ok(new) => {
                    config.reload_from_config(new);
                    tracing::info!(reason, "reloaded the TLS certificate");
                    super::certs::note_file(&status, &files.cert);
                }
                Err(e) => tracing::error!(
                    reason,
                    error = %e,
                    "the new TLS certificate or key does not load; still serving the previous one"
                ),
            }
        }
    }
}
