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
