-- The request log's method, status and result indexes keep only the rows that do NOT hold the
-- column's usual value (issue 14: disk and b-trees per pay). Almost every logged request is a
-- GET answered HTTP 200 with result 0: those entries cost 36 + 35 + 32 bytes and three b-tree
-- inserts per pay and served only filters on the usual value, which now walk the time index
-- (qiwi_http_log_created) and test each row within the list's scan budget
-- (src/db/http_log.rs, src/db/pager.rs). A filter on any other value (POST, 401, 500, result 5)
-- is still one seek in its index, however rare or absent the value. The conditions below are
-- repeated word for word in src/db/http_log.rs (RARE_*), which SQLite needs to use the index.
DROP INDEX qiwi_http_log_method;
DROP INDEX qiwi_http_log_status;
DROP INDEX qiwi_http_log_result;
CREATE INDEX qiwi_http_log_method_rare ON qiwi_http_log (method, created_at)
    WHERE method <> 'GET';
CREATE INDEX qiwi_http_log_status_rare ON qiwi_http_log (status, created_at)
    WHERE status <> 200;
CREATE INDEX qiwi_http_log_result_rare ON qiwi_http_log (result, created_at)
    WHERE result <> 0;
