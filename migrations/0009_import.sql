-- import-original (issue 18): payments and requests copied from the original container's
-- PostgreSQL. One row per run, and on each imported payment the run that brought it, so a
-- run can total exactly its own rows and a later run (--merge) tells them from the gateway's.
CREATE TABLE import_run (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT    NOT NULL,              -- UTC, when the run started
    source      TEXT    NOT NULL,              -- host:port/database and schema, no credentials
    payments    INTEGER NOT NULL DEFAULT 0,    -- qiwi_transaction rows it added
    log_rows    INTEGER NOT NULL DEFAULT 0,    -- qiwi_http_log rows it added (--with-log)
    summary     TEXT    NOT NULL DEFAULT ''    -- the report it printed
);

-- NULL for payments the gateway received itself.
ALTER TABLE qiwi_transaction ADD COLUMN import_id INTEGER REFERENCES import_run (id);
