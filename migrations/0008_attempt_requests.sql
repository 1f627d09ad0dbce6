-- Admin UI II, remaining points (issue 16.3): what each webhook attempt sent.
--
-- Per attempt, as sent: the URL (masked like check-config: user info, query values and fragment
-- as ***), the headers the gateway set, one `name: value` a line (content-type, user-agent,
-- webhook-id, webhook-timestamp, webhook-signature; the HTTP client adds host, accept and
-- content-length), and the JSON body. The body is stored per attempt: it is the payment's
-- payload (a few hundred bytes, bounded by the request size limit of /payment), the same bytes
-- on every attempt, so a row stays small. NULL for attempts made before this migration.
ALTER TABLE qiwi_webhook_attempt ADD COLUMN request_url TEXT;
ALTER TABLE qiwi_webhook_attempt ADD COLUMN request_headers TEXT;
ALTER TABLE qiwi_webhook_attempt ADD COLUMN request_body TEXT;

-- The account prefix search (issue 16.2): the account index also carries sum_minor, so a
-- narrow prefix's count and total are read from the index alone, and its page is sorted by
-- time on the index's own columns (only the page's 50 rows are then read from the table).
DROP INDEX qiwi_transaction_account;
CREATE INDEX qiwi_transaction_account ON qiwi_transaction (account, created_at, sum_minor);
