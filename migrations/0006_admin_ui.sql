-- Admin UI II (issue 16): the request log's result filter, and the audit of manual actions.

-- The request log's "result" filter, in the page's order like the other filters' indexes.
CREATE INDEX qiwi_http_log_result ON qiwi_http_log (result, created_at);

-- Manual actions taken in the admin UI or its CLI (resend one, resend all, password change,
-- ...): who, when, from where, what.
CREATE TABLE admin_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT    NOT NULL,              -- UTC
    username    TEXT    NOT NULL,
    ip          TEXT    NOT NULL,              -- '' when not from the network (the CLI)
    action      TEXT    NOT NULL,              -- e.g. 'resend', 'resend-all'
    detail      TEXT    NOT NULL DEFAULT ''
);
