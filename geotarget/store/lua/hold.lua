-- hold(KEYS, ARGV): the first of a bid's ranked candidates that passes its audiences and whose every cap counter
-- has room (counting the bids already holding slots) holds one slot on each of its counters until the hold
-- ends, without counting it: a win notice counts it (settle.lua), a loss notice or the end of the hold frees it.
-- Needs reserve.lua's functions (geotarget/store/scripts.py puts them first).
--
-- KEYS    every counter and membership key any candidate uses (each once), the candidates' bid records, then
--         the device's registry of keys (registry.lua: the held counters and the record go in it), then the
--         event stream last
-- ARGV[1] how many candidates follow; ARGV[2] the stream's approximate maximum length; ARGV[3] how long the
--         hold lasts (ms); ARGV[4] how long a bid record is kept (s: the hold and the grace for late notices);
--         ARGV[5] the device key (kept in the record)
-- then, per candidate in rank order: n, n triples (index into KEYS, limit, ttl s), a, a pairs (as reserve.lua),
-- the index into KEYS of its bid record, its bid id, its 'bid' event, its 'cap_blocked' event, its
-- impression event without its price (the JSON up to '"price":', which settle.lua completes), and what the
-- shared counters' call (shared.lua's hold_shared, with several shards) decided: '' (nothing to decide),
-- 'held' (it holds their slots in a record of its own), 'refused' (no room: blocked once its audiences pass)
-- or 'unasked' (passed over).
--
-- The record: hash 'k' = the counter keys and their ttls ('key ttl' lines), 'u' = when the hold ends (ms),
-- 'e' = the impression event's head, 'd' = the device key, 'r' = its registry (settle.lua notes the counters
-- a win makes), 's' = 'held' when a shared record goes with it. Returns { held candidate numbers (at most 1),
-- blocked, skipped }.
local function hold(KEYS, ARGV)
  local total, maxlen, hold_ms, keep_s = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
  local registry, stream = KEYS[#KEYS - 1], KEYS[#KEYS]
  local now_ms = clock_ms()
  local pending_s = math.ceil((hold_ms + LATE_NOTICE_MS) / 1000) + 60
  local held, blocked, skipped, events = {}, {}, {}, {}
  local pos = 6
  for candidate = 1, total do
    local n = tonumber(ARGV[pos])
    local first = pos + 1
    local a = tonumber(ARGV[first + 3 * n])
    local gate = first + 3 * n + 1
    local after = gate + 2 * a
    local record, bid_id = KEYS[tonumber(ARGV[after])], ARGV[after + 1]
    local bid_event, blocked_event, head = ARGV[after + 2], ARGV[after + 3], ARGV[after + 4]
    local shared = ARGV[after + 5]
    pos = after + 6
    if #held == 0 and shared ~= 'unasked' then
      if a > 0 and not in_audiences(KEYS, ARGV, gate, a, now_ms / 1000) then
        skipped[#skipped + 1] = candidate
      elseif shared ~= 'refused' and has_room(KEYS, ARGV, first, n, now_ms) then
        local until_ms = now_ms + hold_ms
        local lines = {}
        for i = 0, n - 1 do
          local key = KEYS[tonumber(ARGV[first + 3 * i])]
          hold_slot(key, bid_id, now_ms, until_ms, hold_ms)
          local ttl = tonumber(ARGV[first + 3 * i + 2])
          lines[#lines + 1] = key .. ' ' .. ttl
          remember(registry, key, ttl > 0 and math.max(ttl, pending_s) or 0) -- erasure takes key and key:pending
        end
        redis.call('HSET', record, 'k', table.concat(lines, '\n'), 'u', until_ms, 'e', head, 'd', ARGV[5],
          'r', registry, 's', shared)
        redis.call('EXPIRE', record, keep_s)
        remember(registry, record, keep_s)
        held[1] = candidate
        events[#events + 1] = bid_event
      else
        blocked[#blocked + 1] = candidate
        events[#events + 1] = blocked_event
      end
    end
  end
  append_events(stream, maxlen, events)
  return { held, blocked, skipped }
end
