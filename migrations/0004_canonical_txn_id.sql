-- One QIWI payment is one txn_id NUMBER (issue 11 point 5): leading zeros are not significant,
-- so `code` (and the request log's txn_id, which links requests to their payment) is stored
-- canonical from now on: digits without leading zeros, `0` for all zeros.
--
-- Rows stored before with leading zeros are renamed to the canonical number. On a collision
-- (`881401` and `000881401` both stored: the double credit this change prevents from now on)
-- nothing is deleted or merged: the row already carrying the canonical number (or, among
-- padded ones only, the oldest) takes it, and every other keeps its code exactly as stored,
-- zeros and all. A repeat of that txn_id now answers with the canonical row; the others stay
-- visible for the merchant to settle. They are found with:
--   SELECT * FROM qiwi_transaction WHERE code GLOB '0?*';

UPDATE qiwi_transaction
SET code = CASE WHEN ltrim(code, '0') = '' THEN '0' ELSE ltrim(code, '0') END
WHERE code GLOB '0?*'
  AND code NOT GLOB '*[^0-9]*'
  AND NOT EXISTS (
      SELECT 1 FROM qiwi_transaction AS t
      WHERE t.code = CASE WHEN ltrim(qiwi_transaction.code, '0') = '' THEN '0'
                          ELSE ltrim(qiwi_transaction.code, '0') END
  )
  AND id = (
      SELECT min(t.id) FROM qiwi_transaction AS t
      WHERE t.code GLOB '0?*'
        AND t.code NOT GLOB '*[^0-9]*'
        AND ltrim(t.code, '0') = ltrim(qiwi_transaction.code, '0')
  );

-- The log: only rows whose txn_id is digits with a leading zero (a range on its index).
UPDATE qiwi_http_log
SET txn_id = CASE WHEN ltrim(txn_id, '0') = '' THEN '0' ELSE ltrim(txn_id, '0') END
WHERE txn_id >= '0' AND txn_id < '1'
  AND txn_id GLOB '0?*'
  AND txn_id NOT GLOB '*[^0-9]*';
