-- /readyz's probe (issue 19): each probe inserts one heartbeat row larger than half a page
-- and deletes the earlier ones, so the table holds one row, yet the probe needs a page (and
-- a WAL write) the way a pay does: readiness fails when the disk or the page cap is full.
CREATE TABLE readiness_heartbeat (
    id INTEGER PRIMARY KEY,
    beat_at TEXT NOT NULL,
    padding BLOB NOT NULL
);
