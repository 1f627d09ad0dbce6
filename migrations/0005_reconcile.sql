-- Reconciliations of QIWI's payment registry against the stored payments: one row per
-- reconciliation (its figures as JSON beside the columns the list shows) and one row per
-- differing line. Matched lines are counted, not stored.

CREATE TABLE reconciliation (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      TEXT    NOT NULL,          -- UTC
    file_name       TEXT    NOT NULL,          -- as uploaded or given on the command line
    sha256          TEXT    NOT NULL,          -- hex SHA-256 of the file's bytes
    verdict         TEXT    NOT NULL,          -- 'agrees' or 'N differences'
    differences     INTEGER NOT NULL,
    summary         TEXT    NOT NULL           -- JSON: the report's figures and totals
);
CREATE INDEX reconciliation_created ON reconciliation (created_at);

CREATE TABLE reconciliation_line (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    reconciliation_id   INTEGER NOT NULL REFERENCES reconciliation (id),
    kind                TEXT    NOT NULL,      -- missing_here, missing_from_registry, different, malformed, total
    line                INTEGER,               -- the registry's line number
    txn_id              TEXT,                  -- canonical
    transaction_id      INTEGER,               -- qiwi_transaction.id (prv_txn) when there is one
    registry_date       TEXT,                  -- UTC
    registry_account    TEXT,
    registry_minor      INTEGER,               -- kopecks
    here_date           TEXT,                  -- txn_date as received (Moscow)
    here_account        TEXT,
    here_minor          INTEGER,               -- kopecks
    reason              TEXT    NOT NULL
);
CREATE INDEX reconciliation_line_of ON reconciliation_line (reconciliation_id, id);
