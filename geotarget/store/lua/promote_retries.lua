-- Move deliveries whose retry is due back into the delivery stream (atomically, so two workers never move one
-- twice). KEYS[1] the retry schedule, KEYS[2] the delivery stream; ARGV[1] now ms, ARGV[2] at most this many,
-- ARGV[3] stream length cap. Returns how many moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'd', id)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
