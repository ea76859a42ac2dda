-- wrk script for the Rapport send benchmark (bench/README: `python -m bench`).
--
-- args: <requests file> <mode>
--   file lines: "<chain>\t<path>\t<authorization>\t<json body>", already signed, in chain
--   order (a chain is one sender's hash chain in one connection).
--   mode "chain": a chain has at most one request in flight; its next message goes out
--   only after the previous one was answered 2xx (the answer is matched through the
--   X-Request-Id header the server echoes). Needs more chains than connections.
--   mode "any": the same requests round-robin, answers ignored (bare reference endpoint).
--   A 2xx answer of POST /v1/messages/batch has one result per message: its accepted
--   ("status":201) and refused results are counted too (items_ok, items_failed).
-- done() prints one JSON line: 2xx count, other statuses, filler requests, latencies.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local queues = {}   -- chain -> array of formatted requests
local pos = {}      -- chain -> next index
local ready = {}    -- FIFO of chains whose next request may go out
local head, tail = 1, 0
local order = {}    -- every request in file order (mode any)
local rr = 1
local mode = "chain"
ok = 0
failed = 0
items_ok = 0
items_failed = 0
filler = 0
statuses = ""
local status_counts = {}
local filler_req = nil

function init(args)
  local path = args[1]
  mode = args[2] or "chain"
  local nthreads = tonumber(args[3]) or 1
  local me = tonumber(tid) or 0
  local index = 0
  local seen = {}
  for line in io.lines(path) do
    local chain, p, auth, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
    if chain then
      if seen[chain] == nil then
        seen[chain] = index
        index = index + 1
      end
      if seen[chain] % nthreads == me then
        local headers = {
          ["Content-Type"] = "application/json",
          ["Authorization"] = auth,
          ["X-Request-Id"] = chain,
        }
        local req = wrk.format("POST", p, headers, body)
        if queues[chain] == nil then
          queues[chain] = {}
          pos[chain] = 1
          tail = tail + 1
          ready[tail] = chain
        end
        table.insert(queues[chain], req)
        table.insert(order, req)
      end
    end
  end
  filler_req = wrk.format("GET", "/healthz")
end

function request()
  if mode == "any" then
    local req = order[rr]
    rr = rr % #order + 1
    return req
  end
  local chain = nil
  if head <= tail then
    chain = ready[head]
    ready[head] = nil
    head = head + 1
  end
  if chain == nil then
    filler = filler + 1
    return filler_req
  end
  local i = pos[chain]
  pos[chain] = i + 1
  return queues[chain][i]
end

function response(status, headers, body)
  local chain = headers["x-request-id"]
  if mode == "chain" and (chain == nil or queues[chain] == nil) then
    return -- a filler request
  end
  if status >= 200 and status < 300 then
    ok = ok + 1
    if body ~= nil and string.sub(body, 1, 12) == '{"results":[' then
      local items = select(2, string.gsub(body, '"replayed":', ""))
      local accepted = select(2, string.gsub(body, '{"status":201,"message":{', ""))
      items_ok = items_ok + accepted
      items_failed = items_failed + items - accepted
    end
  else
    failed = failed + 1
    status_counts[status] = (status_counts[status] or 0) + 1
    local parts = {}
    for s, n in pairs(status_counts) do
      table.insert(parts, s .. ":" .. n)
    end
    statuses = table.concat(parts, ",")
  end
  if mode == "chain" and status >= 200 and status < 300 and pos[chain] <= #queues[chain] then
    tail = tail + 1
    ready[tail] = chain
  end
end

function done(summary, latency, requests)
  local total_ok, total_failed, total_filler = 0, 0, 0
  local total_items_ok, total_items_failed = 0, 0
  local all_statuses = {}
  for _, thread in ipairs(threads) do
    total_ok = total_ok + (thread:get("ok") or 0)
    total_failed = total_failed + (thread:get("failed") or 0)
    total_filler = total_filler + (thread:get("filler") or 0)
    total_items_ok = total_items_ok + (thread:get("items_ok") or 0)
    total_items_failed = total_items_failed + (thread:get("items_failed") or 0)
    local s = thread:get("statuses")
    if s ~= nil and s ~= "" then
      table.insert(all_statuses, s)
    end
  end
  io.write(string.format(
    '{"ok": %d, "failed": %d, "filler": %d, "statuses": "%s", "duration_us": %d, '
      .. '"requests": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d, '
      .. '"items_ok": %d, "items_failed": %d}\n',
    total_ok, total_failed, total_filler, table.concat(all_statuses, ","),
    summary.duration, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), total_items_ok, total_items_failed))
end
