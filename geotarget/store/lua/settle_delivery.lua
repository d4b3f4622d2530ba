-- Record one attempt of a delivery and acknowledge its stream entry, in one step: a worker killed before this
-- leaves the entry pending in the group, and another worker claims and sends it again (at least once).
--
-- KEYS[1] the delivery's hash   KEYS[2] the delivery stream   KEYS[3] the retry schedule (sorted set)
-- KEYS[4] the delivery counters (hash)   KEYS[5] the device's set of pending deliveries
-- ARGV[1] stream entry id, ARGV[2] consumer group, ARGV[3] outcome: 'delivered', 'retry' or 'failed',
-- ARGV[4] now ms, ARGV[5] next attempt ms (retry), ARGV[6] response status ('' none), ARGV[7] error ('' none),
-- ARGV[8] latency ms, ARGV[9] seconds a settled delivery stays listed, ARGV[10] delivery id
-- Returns the delivery's attempts so far, or -1 when it was already settled or is gone.
redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then
  return -1
end
local outcome = ARGV[3]
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'last_at', ARGV[4], 'code', ARGV[6], 'error', ARGV[7], 'latency_ms', ARGV[8])
if outcome == 'retry' then
  redis.call('HSET', KEYS[1], 'next_at', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[10])
  redis.call('HINCRBY', KEYS[4], 'retried', 1)
else
  -- settled: the body (with the raw device id) goes; what was sent stays listed without it
  redis.call('HSET', KEYS[1], 'status', outcome, 'next_at', '')
  redis.call('HDEL', KEYS[1], 'body')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[9]))
  redis.call('SREM', KEYS[5], ARGV[10])
  redis.call('HINCRBY', KEYS[4], outcome, 1)
  if outcome == 'delivered' then
    redis.call('HINCRBYFLOAT', KEYS[4], 'latency_ms_sum', ARGV[8])
  end
end
return attempts
