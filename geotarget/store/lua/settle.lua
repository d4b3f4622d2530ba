-- Settle one bid (hold.lua) on its win, billing or loss notice, once: the first notice takes the bid record.
-- A win or billing notice counts the held slots (the impression happened) and appends the impression with its
-- clearing price; a loss frees them. A notice after the hold ended still settles while the record is kept: a
-- late win is counted, for the device did see the offer.
-- Needs reserve.lua's functions (clock_ms, append_events) and registry.lua's remember.
--
-- KEYS[1] the bid record, KEYS[2] the event stream
-- ARGV[1] 'win' or 'loss'; ARGV[2] the bid id; ARGV[3] the clearing price (a JSON number); ARGV[4] the stream's
--         approximate maximum length
-- The same settles a shared record (shared.lua's hold_shared: the bid's slots on budgets and goals, no event).
-- Returns { 0 (no such bid: never made, already settled, or forgotten), 1 (settled in time) or 2 (settled late),
-- 1 when a shared record goes with it (its device's record says so) }.
local record, stream = KEYS[1], KEYS[2]
local fields = redis.call('HMGET', record, 'k', 'u', 'e', 'r', 's')
local shared = fields[5] == 'held' and 1 or 0
if not fields[1] then
  return { 0, 0 }
end
redis.call('DEL', record)
local won = ARGV[1] == 'win'
for line in string.gmatch(fields[1], '[^\n]+') do
  local key, ttl = string.match(line, '^(.*) (%d+)$')
  redis.call('ZREM', key .. ':pending', ARGV[2])
  if won and redis.call('INCR', key) == 1 then
    if tonumber(ttl) > 0 then
      redis.call('EXPIRE', key, tonumber(ttl))
    end
    if fields[4] then -- the device's registry (registry.lua), in the record's slot; older records have none
      remember(fields[4], key, tonumber(ttl))
    end
  end
end
if won and fields[3] then -- a shared record (shared.lua) has no event: its device's record logs it
  append_events(stream, ARGV[4], { fields[3] .. ARGV[3] .. '}' })
end
if clock_ms() > tonumber(fields[2]) then
  return { 2, shared }
end
return { 1, shared }
