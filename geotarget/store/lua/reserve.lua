-- reserve(KEYS, ARGV): serve, atomically, up to ARGV[1] ranked candidates whose every cap counter has room,
-- count them, and append what happened to the event stream: one round trip per request. A library, like
-- presence.lua (geotarget/store/scripts.py makes scripts of them).
--
-- KEYS    every counter and membership key any candidate uses (each once), then the device's registry of keys
--         (registry.lua), then the event stream last
-- ARGV[1] how many candidates may be served at most
-- ARGV[2] how many candidates follow
-- ARGV[3] the stream's approximate maximum length
-- ARGV[4] the ping event (JSON), or "" for none
-- ARGV[5] the prefix of the device's own keys (a counter under it is the device's, noted in its registry)
-- then, per candidate in rank order: n, n triples (index into KEYS, limit, ttl seconds; 0 = none), a, a pairs
-- (its audience formula in postfix, geotarget/audiences/gate.py: the index into KEYS of the device's memberships
-- hash with the field of an audience generation, whose value is when it runs out, for "a member", the index
-- negated for "not a member"; or 0 with '&n', '|n' or '!' over the last n values), its kind, and its event: the
-- JSON of its impression without the leading '{"kind":"impression",'
-- (prefixed here with the kind that happened: "impression" (or "ghost") when served, "cap_blocked" when a
-- counter was full). A ghost is counted like an impression but not shown (the device is in the offer's
-- holdout group), so it does not use up the limit. With several shards the shared counters (budgets, goals) were
-- decided before this call (shared.lua): a candidate they refused comes as 'refused' (blocked once its audiences
-- pass), one they were not asked about as 'unasked' (passed over, for the next request).
--
-- A candidate whose audience formula is false for the device (a member of an excluded audience, of none of its
-- included ones, or what its targeting expression asks of memberships) is skipped: not counted, not logged.
--
-- A counter has room when what it counted plus the bids holding a slot on it (see has_room) is under its limit.
--
-- Returns { served candidate numbers (1-based, ghosts included), blocked candidate numbers, skipped ones }.
-- A candidate with n = 0 is uncapped and always served while there is room. Counters shared by several
-- candidates (a global or a merchant cap) see the increments of the candidates served before them in the same
-- call. Candidates after the last one served, once the limit is reached, are neither counted nor logged. A failing append does not
-- undo the counting (events are best effort; caps are a promise).
local function in_audiences(KEYS, ARGV, first, a, now)
  local values, top = {}, 0
  for i = 0, a - 1 do
    local index, step = tonumber(ARGV[first + 2 * i]), ARGV[first + 2 * i + 1]
    if index ~= 0 then
      local member = tonumber(redis.call('HGET', KEYS[math.abs(index)], step) or '0') > now
      top = top + 1
      values[top] = member == (index > 0)
    elseif step == '!' then
      values[top] = not values[top]
    else
      local n, all = tonumber(string.sub(step, 2)), string.sub(step, 1, 1) == '&'
      local value = all
      for j = top - n + 1, top do
        if all then value = value and values[j] else value = value or values[j] end
      end
      top = top - n + 1
      values[top] = value
    end
  end
  return top == 0 or values[1]
end

-- A counter's use is what it counted plus the bids holding a slot on it (hold.lua): the sorted set
-- '<counter>:pending' of bid ids scored by when their hold ends (ms). It shares the counter's hash tag, so it
-- lives in the counter's slot even though it is not among KEYS. A bid whose hold ended with no notice stays in
-- the set for LATE_NOTICE_MS (its record's grace for a late win, bidder.LATE_GRACE_S); all such bids but one
-- count too, so however late wins come, a counter ends at most one over its limit.
local LATE_NOTICE_MS = 3600000

local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function has_room(KEYS, ARGV, first, n, now_ms)
  for i = 0, n - 1 do
    local key = KEYS[tonumber(ARGV[first + 3 * i])]
    local pending = key .. ':pending'
    local holding = redis.call('ZCOUNT', pending, now_ms, '+inf')
    local unsettled = redis.call('ZCOUNT', pending, now_ms - LATE_NOTICE_MS, '(' .. now_ms)
    local used = tonumber(redis.call('GET', key) or '0') + holding + math.max(0, unsettled - 1)
    if used >= tonumber(ARGV[first + 3 * i + 1]) then
      return false
    end
  end
  return true
end

-- Holds one slot on a counter for a bid until until_ms (hold.lua, shared.lua): the bid joins '<counter>:pending',
-- which outlives the hold by the late-notice grace; bids whose grace ended leave it.
local function hold_slot(key, bid_id, now_ms, until_ms, hold_ms)
  local pending = key .. ':pending'
  redis.call('ZREMRANGEBYSCORE', pending, '-inf', '(' .. (now_ms - LATE_NOTICE_MS))
  redis.call('ZADD', pending, until_ms, bid_id)
  if redis.call('PTTL', pending) < hold_ms + LATE_NOTICE_MS + 60000 then
    redis.call('PEXPIRE', pending, hold_ms + LATE_NOTICE_MS + 60000)
  end
end

-- Events are best effort (caps are a promise): a failing append never undoes what the script counted.
local function append_events(stream, maxlen, events)
  for _, e in ipairs(events) do
    redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', e)
  end
end

-- Counts one candidate's counters. A device's counter made here is noted in the device's registry (registry.lua),
-- given as its name and the prefix its per-device keys share; an offer's budget counter is nobody's (nil: a dry
-- run notes nothing).
local function count(KEYS, ARGV, first, n, registry, device_root)
  for i = 0, n - 1 do
    local key = KEYS[tonumber(ARGV[first + 3 * i])]
    local ttl = tonumber(ARGV[first + 3 * i + 2])
    if redis.call('INCR', key) == 1 then
      if ttl > 0 then
        redis.call('EXPIRE', key, ttl)
      end
      if registry and string.sub(key, 1, #device_root) == device_root then
        remember(registry, key, ttl)
      end
    end
  end
end

local function reserve(KEYS, ARGV)
  local limit = tonumber(ARGV[1])
  local total = tonumber(ARGV[2])
  local registry, stream = KEYS[#KEYS - 1], KEYS[#KEYS]
  local maxlen = ARGV[3]
  local device_root = ARGV[5]
  local events = {}
  if ARGV[4] ~= '' then
    events[1] = ARGV[4]
  end
  local pos = 6
  local served, blocked, skipped, shown = {}, {}, {}, 0
  local now_ms = nil -- read once, when a candidate first asks about audiences or caps
  for candidate = 1, total do
    if shown >= limit then
      break
    end
    local n = tonumber(ARGV[pos])
    local first = pos + 1
    local a = tonumber(ARGV[first + 3 * n])
    local gate = first + 3 * n + 1
    local kind = ARGV[gate + 2 * a]
    local event = ARGV[gate + 2 * a + 1]
    pos = gate + 2 * a + 2
    if a > 0 or n > 0 then
      now_ms = now_ms or clock_ms()
    end
    if kind == 'unasked' then -- left for the next request (shared.lua)
      now_ms = now_ms or clock_ms()
    elseif a > 0 and not in_audiences(KEYS, ARGV, gate, a, now_ms / 1000) then
      skipped[#skipped + 1] = candidate
    elseif kind ~= 'refused' and has_room(KEYS, ARGV, first, n, now_ms) then
      count(KEYS, ARGV, first, n, registry, device_root)
      served[#served + 1] = candidate
      if kind ~= 'ghost' then
        shown = shown + 1
      end
      events[#events + 1] = '{"kind":"' .. kind .. '",' .. event
    else
      blocked[#blocked + 1] = candidate
      events[#events + 1] = '{"kind":"cap_blocked",' .. event
    end
  end
  append_events(stream, maxlen, events)
  return { served, blocked, skipped }
end
