-- Enqueue one delivery, once: a delivery id already known changes nothing (a transition handled twice).
--
-- KEYS[1] the delivery's hash   KEYS[2] its webhook's index (sorted set: delivery id -> created ms)
-- KEYS[3] the delivery stream   KEYS[4] the device's set of pending deliveries (written when ARGV[5] = '1')
-- ARGV[1] delivery id, ARGV[2] created ms, ARGV[3] how many deliveries a webhook's index lists, ARGV[4] stream
-- length cap, ARGV[5] '1' when the body holds a raw device id, then field/value pairs of the hash.
-- Returns 1 when enqueued, 0 when it was known.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local fields = {}
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[3]) - 1)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'd', ARGV[1])
if ARGV[5] == '1' then
  redis.call('SADD', KEYS[4], ARGV[1])
end
return 1
