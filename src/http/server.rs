//! The HTTP server's section of the configuration: where it listens, its HTTPS, the limits on
//! connections and requests, the shutdown grace, and the proxies whose `X-Forwarded-For` is
//! believed. Built from the keys by `config`; this module does not read them.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::ops::acme::AcmeSettings;
use crate::ops::tls::TlsFiles;

/// How the server listens and what one connection or request may take.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where the HTTP server listens (`listen_addr`).
    pub listen_addr: SocketAddr,
    /// Built-in HTTPS, when a certificate and key are configured (`tls_cert_file`,
    /// `tls_key_file`).
    pub tls: Option<TlsFiles>,
    /// Built-in HTTPS with certificates from an ACME server (Let's Encrypt), when
    /// `acme_domains` is set; never together with [`ServerSettings::tls`].
    pub acme: Option<AcmeSettings>,
    /// A request head (and, on a kept-alive connection, the wait for the next one) must
    /// arrive within this, else the connection is closed (`http_header_timeout_secs`).
    pub header_timeout: Duration,
    /// A request's body must arrive within this from its head; it is answered 408 at the
    /// latest 5 s later. Kept well inside QIWI's 60 s (`http_request_timeout_secs`).
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the kernel's listen queue
    /// (`http_max_connections`).
    pub max_connections: usize,
    /// Connections one address (an IPv6 address's /64) may hold open at once; more are closed
    /// as soon as they are accepted. 0 = no cap. Trusted proxies are not capped: every client
    /// behind one shares its address (`http_max_connections_per_ip`; docs/operations.md,
    /// "Limits").
    pub max_connections_per_ip: usize,
    /// Longest wait for in-flight requests after SIGTERM (`shutdown_timeout_secs`).
    pub shutdown_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`trusted_proxies`; see
    /// [`super::client_ip`]).
    pub trusted_proxies: Vec<IpNet>,
}

impl ServerSettings {
    /// Whether the gateway serves HTTPS itself (certificate files or ACME).
    pub fn https(&self) -> bool {
        self.tls.is_some() || self.acme.is_some()
    }
}
