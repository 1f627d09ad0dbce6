//! The protocol's section of the configuration: who may call `/payment` and what a valid
//! payment looks like. Built from the keys by `config`; this module does not read them.

use ipnet::IpNet;
use regex::Regex;

use super::Amount;
use crate::http::BasicAuth;

/// What `/payment` accepts (`http_auth_*`, `qiwi_allowed_ips`, `account_pattern`, `min_sum`,
/// `max_sum`, `payments_enabled`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Basic auth on `/payment` (`HTTP_AUTH_USERNAME`/`HTTP_AUTH_PASSWORD`); `None` leaves it
    /// open.
    pub http_auth: Option<BasicAuth>,
    /// Who may call `/payment` (`QIWI_ALLOWED_IPS`); empty lets everyone.
    pub allowed_ips: Vec<IpNet>,
    /// What a valid account looks like, anchored at both ends ([`super::anchored_pattern`]).
    pub account_pattern: Regex,
    /// Smallest accepted sum.
    pub min_sum: Amount,
    /// Largest accepted sum, if any.
    pub max_sum: Option<Amount>,
    /// `false` answers result 7 to new payments (maintenance).
    pub payments_enabled: bool,
}

impl Settings {
    /// The rules a request's values are parsed against.
    pub fn rules(&self) -> super::Rules<'_> {
        super::Rules {
            account_pattern: &self.account_pattern,
            min_sum: self.min_sum,
            max_sum: self.max_sum,
        }
    }
}
