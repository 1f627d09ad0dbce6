-- Seeing it work: test payments and the dashboard's charts.
--
-- Test payments. The admin UI reserves a txn_id in `test_payment` before it sends the test
-- pay through /payment; the trigger below marks the row `test = 1` in the same transaction
-- that stores it, so the webhook worker never sees it unmarked. Only a logged-in admin can
-- reserve a txn_id: a request from outside cannot make its payment a test one.
ALTER TABLE qiwi_transaction ADD COLUMN test INTEGER NOT NULL DEFAULT 0; -- 1: a test payment
CREATE INDEX qiwi_transaction_test ON qiwi_transaction (created_at) WHERE test = 1;

CREATE TABLE test_payment (
    code        TEXT    PRIMARY KEY,            -- the txn_id reserved for a test payment
    account     TEXT    NOT NULL,
    sum_minor   INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,               -- when the admin sent it (UTC)
    username    TEXT    NOT NULL,               -- who sent it
    check_status INTEGER,                       -- the check backend's HTTP status
    check_body  TEXT,                           -- the start of its answer
    check_answer TEXT,                          -- QIWI's check answer (XML) as received
    pay_answer  TEXT                            -- QIWI's pay answer (XML) as received
) WITHOUT ROWID;

CREATE TRIGGER qiwi_transaction_mark_test AFTER INSERT ON qiwi_transaction
WHEN EXISTS (SELECT 1 FROM test_payment WHERE code = NEW.code)
BEGIN
    UPDATE qiwi_transaction SET test = 1 WHERE id = NEW.id;
END;

-- The charts' figures, per UTC hour ('YYYY-MM-DD HH'), kept by triggers in the writer's own
-- transactions: a chart reads at most 60 x 24 rows, whatever the size of the tables. Test
-- payments are left out (their txn_id is in test_payment before they are stored).
CREATE TABLE stats_hour (
    hour        TEXT    PRIMARY KEY,
    payments    INTEGER NOT NULL DEFAULT 0,    -- payments stored
    sum_minor   INTEGER NOT NULL DEFAULT 0,    -- their sum, kopecks
    acked       INTEGER NOT NULL DEFAULT 0,    -- payments whose webhook was first acknowledged
    delivered   INTEGER NOT NULL DEFAULT 0,    -- webhook attempts that succeeded
    failed      INTEGER NOT NULL DEFAULT 0     -- webhook attempts that failed
) WITHOUT ROWID;

CREATE TABLE stats_result_hour (
    hour        TEXT    NOT NULL,
    result      INTEGER NOT NULL,              -- the protocol result code answered
    answers     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, result)
) WITHOUT ROWID;

CREATE TRIGGER stats_payment AFTER INSERT ON qiwi_transaction
WHEN NOT EXISTS (SELECT 1 FROM test_payment WHERE code = NEW.code)
BEGIN
    INSERT INTO stats_hour (hour, payments, sum_minor)
    VALUES (substr(NEW.created_at, 1, 13), 1, NEW.sum_minor)
    ON CONFLICT (hour) DO UPDATE SET payments = payments + 1,
                                     sum_minor = sum_minor + excluded.sum_minor;
END;

CREATE TRIGGER stats_acked AFTER UPDATE OF status ON qiwi_transaction
WHEN OLD.status = 0 AND NEW.status = 1 AND NEW.test = 0
BEGIN
    INSERT INTO stats_hour (hour, acked)
    VALUES (substr(coalesce(NEW.delivered_at, NEW.last_attempt_at, NEW.created_at), 1, 13), 1)
    ON CONFLICT (hour) DO UPDATE SET acked = acked + 1;
END;

CREATE TRIGGER stats_attempt AFTER INSERT ON qiwi_webhook_attempt
WHEN NOT EXISTS (SELECT 1 FROM qiwi_transaction WHERE id = NEW.transaction_id AND test = 1)
BEGIN
    INSERT INTO stats_hour (hour, delivered, failed)
    VALUES (substr(NEW.created_at, 1, 13), NEW.error IS NULL, NEW.error IS NOT NULL)
    ON CONFLICT (hour) DO UPDATE SET delivered = delivered + excluded.delivered,
                                     failed = failed + excluded.failed;
END;

CREATE TRIGGER stats_result AFTER INSERT ON qiwi_http_log
WHEN NEW.result IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM test_payment WHERE code = NEW.txn_id)
BEGIN
    INSERT INTO stats_result_hour (hour, result, answers)
    VALUES (substr(NEW.created_at, 1, 13), NEW.result, 1)
    ON CONFLICT (hour, result) DO UPDATE SET answers = answers + 1;
END;

-- What was there before this migration, counted once.
INSERT INTO stats_hour (hour, payments, sum_minor)
-- total(), not sum(): sum() stops the migration with "integer overflow" on absurd sums, and a
-- chart may saturate where an account may not (exact up to 2^53 kopecks an hour).
SELECT substr(created_at, 1, 13), count(*), CAST(total(sum_minor) AS INTEGER)
FROM qiwi_transaction GROUP BY 1;
INSERT INTO stats_hour (hour, acked)
SELECT substr(coalesce(delivered_at, last_attempt_at, created_at), 1, 13), count(*)
FROM qiwi_transaction WHERE status = 1 GROUP BY 1 HAVING true
ON CONFLICT (hour) DO UPDATE SET acked = excluded.acked;
INSERT INTO stats_hour (hour, delivered, failed)
SELECT substr(created_at, 1, 13), sum(error IS NULL), sum(error IS NOT NULL)
FROM qiwi_webhook_attempt GROUP BY 1 HAVING true
ON CONFLICT (hour) DO UPDATE SET delivered = excluded.delivered, failed = excluded.failed;
INSERT INTO stats_result_hour (hour, result, answers)
SELECT substr(created_at, 1, 13), result, count(*)
FROM qiwi_http_log WHERE result IS NOT NULL GROUP BY 1, 2;
