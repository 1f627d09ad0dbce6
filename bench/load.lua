-- wrk script: QIWI requests against /payment. MODE (env) picks the request:
--   check  - command=check, unique txn_ids
--   pay    - command=pay, unique txn_ids
--   repeat - command=pay, the same txn_id every time
--   mixed  - check and pay in turn, unique txn_ids
--   plain  - whatever path wrk was given (the ceiling)
-- Counts answers with <result>0</result> and prints one JSON line at the end. With PAID_FILE
-- set, also writes there the txn_id (the answer's osmp_txn_id) of every pay answered 0, one a
-- line, so a caller can compare them with the database by id.
local mode = os.getenv("MODE") or "plain"
local paid_file = os.getenv("PAID_FILE")
local threads = {}
local counter = 0
ok = 0
bad = 0
payok = 0
paid = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  -- Seeded per run and thread: unseeded, math.random gives every run the same prefixes, so a
  -- second run on the same database (bench/run scale's seeded file, the warm run after the
  -- cold one) paid only repeats of the first run's txn_ids.
  math.randomseed(os.time() * 64 + id)
  prefix = tostring(id) .. string.format("%07d", math.random(0, 9999999))
end

function request()
  counter = counter + 1
  local txn = prefix .. string.format("%08d", counter)
  if mode == "mixed" then
    if counter % 2 == 0 then
      return wrk.format("GET", "/payment?command=pay&txn_id=" .. txn .. "&account=79001234567&sum=10.45&txn_date=20240101120000")
    end
    return wrk.format("GET", "/payment?command=check&txn_id=" .. txn .. "&account=79001234567&sum=10.45")
  elseif mode == "check" then
    return wrk.format("GET", "/payment?command=check&txn_id=" .. txn .. "&account=79001234567&sum=10.45")
  elseif mode == "pay" then
    return wrk.format("GET", "/payment?command=pay&txn_id=" .. txn .. "&account=79001234567&sum=10.45&txn_date=20240101120000")
  elseif mode == "repeat" then
    return wrk.format("GET", "/payment?command=pay&txn_id=42&account=79001234567&sum=10.45&txn_date=20240101120000")
  end
  return wrk.format("GET", "/payment")
end

function response(status, headers, body)
  if status == 200 and string.find(body, "<result>0</result>", 1, true) then
    ok = ok + 1
    if string.find(body, "<prv_txn>", 1, true) then
      payok = payok + 1
      if paid_file then
        paid[#paid + 1] = string.match(body, "<osmp_txn_id>([^<]*)</osmp_txn_id>") or "?"
      end
    end
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local oks, bads, payoks = 0, 0, 0
  local out = paid_file and assert(io.open(paid_file, "w"))
  for _, t in ipairs(threads) do
    oks = oks + t:get("ok")
    bads = bads + t:get("bad")
    payoks = payoks + t:get("payok")
    if out then
      for _, txn in ipairs(t:get("paid")) do
        out:write(txn, "\n")
      end
    end
  end
  if out then
    out:close()
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'JSON {"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"errors":%d,"ok":%d,"not_ok":%d,"pays_ok":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, errors, oks, bads, payoks))
end
