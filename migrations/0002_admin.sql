-- The admin UI: its credentials, its sessions, and the indexes its list pages need.
--
-- Every list is ordered newest first by (created_at, id) and paged by keyset, so each filter
-- the UI offers has an index whose order is that of the page: (column, created_at), to which
-- SQLite appends the rowid. A page is then one index seek and 51 steps, on the first page as
-- on the last, with or without the filter.

-- The generated admin password (only when ADMIN_PASSWORD is not configured): its argon2 hash.
CREATE TABLE admin_password (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    password_hash   TEXT    NOT NULL,          -- PHC string ($argon2id$...)
    created_at      TEXT    NOT NULL
);

-- Logged-in sessions. The cookie holds a random token; only its SHA-256 is stored, so a copy
-- of the database does not log anyone in.
CREATE TABLE admin_session (
    token_hash      TEXT    PRIMARY KEY,       -- hex SHA-256 of the cookie value
    username        TEXT    NOT NULL,
    csrf_token      TEXT    NOT NULL,          -- the session's CSRF token, sent in every form
    created_at      TEXT    NOT NULL,
    expires_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX qiwi_transaction_created ON qiwi_transaction (created_at);
CREATE INDEX qiwi_transaction_account ON qiwi_transaction (account, created_at);
CREATE INDEX qiwi_transaction_status ON qiwi_transaction (status, created_at);
-- Deliveries that failed at least once and are still not acknowledged: the dashboard's list
-- and the "failing" filter. Small, whatever the size of the table.
CREATE INDEX qiwi_transaction_failing ON qiwi_transaction (created_at)
    WHERE status = 0 AND attempts > 0;

CREATE INDEX qiwi_http_log_created ON qiwi_http_log (created_at);
CREATE INDEX qiwi_http_log_ip ON qiwi_http_log (ip, created_at);
CREATE INDEX qiwi_http_log_status ON qiwi_http_log (status, created_at);
CREATE INDEX qiwi_http_log_method ON qiwi_http_log (method, created_at);
