-- Tables and columns named by the original product (see shared/spec), plus what this
-- product needs beside them. Times are UTC text 'YYYY-MM-DD HH:MM:SS' unless named *_ms
-- (Unix milliseconds, for scheduling).

CREATE TABLE qiwi_http_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ip          TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    method      TEXT    NOT NULL,
    headers     TEXT    NOT NULL,            -- JSON object; Authorization secret masked
    body        TEXT    NOT NULL DEFAULT '',
    created_at  TEXT    NOT NULL,
    -- what the gateway answered
    status      INTEGER NOT NULL,
    response    TEXT    NOT NULL DEFAULT '',
    txn_id      TEXT,                        -- the request's txn_id when it had one
    result      INTEGER                      -- the protocol result code when it got one
);
CREATE INDEX qiwi_http_log_txn_id ON qiwi_http_log (txn_id) WHERE txn_id IS NOT NULL;

CREATE TABLE qiwi_transaction (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    account             TEXT    NOT NULL,
    code                TEXT    NOT NULL UNIQUE,   -- QIWI's txn_id, kept as text (may exceed i64)
    sum                 REAL    NOT NULL,          -- the original product's float column
    status              INTEGER NOT NULL DEFAULT 0, -- 0 received, 1 webhook acknowledged
    created_at          TEXT    NOT NULL,
    sum_minor           INTEGER NOT NULL,          -- the exact sum in kopecks: the source of truth
    txn_date            TEXT    NOT NULL,          -- QIWI's txn_date as received (Moscow time)
    extra               TEXT    NOT NULL DEFAULT '{}', -- other request parameters, JSON
    -- webhook delivery state: the row itself is the outbox
    delivery_due_ms     INTEGER,                   -- next attempt; NULL when nothing is due
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    last_attempt_at     TEXT,
    delivered_at        TEXT
);
CREATE INDEX qiwi_transaction_due ON qiwi_transaction (delivery_due_ms)
    WHERE delivery_due_ms IS NOT NULL;

CREATE TABLE qiwi_webhook_attempt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id  INTEGER NOT NULL REFERENCES qiwi_transaction (id),
    created_at      TEXT    NOT NULL,
    http_status     INTEGER,                   -- NULL when no HTTP answer came
    error           TEXT,                      -- NULL on success; else the kind of failure
    duration_ms     INTEGER NOT NULL,
    response_body   TEXT    NOT NULL DEFAULT '' -- first 1 KiB
);
CREATE INDEX qiwi_webhook_attempt_txn ON qiwi_webhook_attempt (transaction_id, id);
