//! The admin UI's section of the configuration: its credentials and cookie, how it shows
//! times and amounts, and what its reconciliation page accepts. Built from the keys by
//! `config`; this module does not read them.

use crate::reconcile::ColumnMap;
use crate::secret::Secret;

use super::view::DisplayLocale;

/// What the admin UI is configured with (`admin_*`, `display_*`, `reconcile_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The admin UI's user name (`admin_username`).
    pub username: String,
    /// The admin UI's password (`admin_password`), if configured.
    pub password: Option<Secret>,
    /// Mark the admin session cookie `Secure` (`admin_cookie_secure`; set it when the UI is
    /// served over HTTPS).
    pub cookie_secure: bool,
    /// The time zone the admin UI shows and reads times in (`display_timezone`, an IANA name;
    /// storage stays UTC).
    pub display_timezone: chrono_tz::Tz,
    /// How the admin UI and its CSV write amounts (`display_locale`).
    pub display_locale: DisplayLocale,
    /// Which registry columns hold txn_id, date, account and sum (`reconcile_columns`);
    /// `None`: by header name.
    pub reconcile_columns: Option<ColumnMap>,
    /// Largest registry the admin page accepts, in bytes (`reconcile_max_upload_mib`).
    pub reconcile_max_upload: usize,
}
