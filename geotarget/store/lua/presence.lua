-- move_presence(KEYS, ARGV): move one device's presence in fences (the rules: geotarget/triggers/presence.py),
-- atomically, and hand every transition it fires to the trigger worker's stream in the same step. A library
-- (geotarget/store/scripts.py makes scripts of it, alone or with reserve.lua in serve.lua). The parameters shadow
-- Redis's globals of the same names, so the body reads as a script would.
--
-- KEYS[1] the device's presence hash as one app sees it (under the device's hash tag): '_ts' newest ping
--         applied (ms), '_id'/'_app' the raw device id and who sent it (JSON [app key id, targeting attributes];
--         kept only while the device is present somewhere, for exit deliveries and pushes), and per present
--         fence 'f:<fence id>' = 'entered ms,last inside ms,dwelled s,distance m'. A device present nowhere
--         before and after a call has no hash: nothing is written for it.
-- KEYS[2] the sweeper's sorted set: '<device key>|<app key id>' -> when its oldest presence times out (ms)
-- KEYS[3] the device's registry of keys (registry.lua): the hash is noted in it, for erasure
-- KEYS[4] the transitions stream of the device's shard: one entry per transition, fields m (the presence's
--         member), i (raw device id), s (sender), k (kind), f (fence id), a (at ms), d (dwell s), x (distance m),
--         h (dwell threshold s) and p ('lat,lon' of the ping that fired it; '' for a sweep); '' where unknown
-- ARGV[1] 'ping' or 'sweep'; ARGV[2] the presence's member of that set; ARGV[3] timeout (ms); ARGV[4] seconds
--         the hash outlives its last change; ARGV[5] the stream's approximate greatest length
-- ping:  ARGV[6] raw device id, ARGV[7] sender, ARGV[8] number of pings, then per ping (in timestamp order):
--        ts ms, accurate 1/0, 'lat,lon', n sightings, then n times: fence id, inside 1/0, distance m, dwell
--        thresholds ('300,600')
-- sweep: ARGV[6] now (ms)
--
-- Returns { raw device id, sender (as stored before this call: a sweep needs them), transitions flat, 6 values each:
-- kind, fence id, at ms, dwell s, distance m ('' unknown), dwell threshold s ('' for enter and exit) }.
local function move_presence(KEYS, ARGV)
  local key, due, registry, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
  local mode, device, timeout, keep_s, most = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]

  local present, changed = {}, {}
  local raw = redis.call('HGETALL', key)
  local last, stored_id, stored_app = -1, '', ''
  for i = 1, #raw, 2 do
    local field, value = raw[i], raw[i + 1]
    if field == '_ts' then
      last = tonumber(value)
    elseif field == '_id' then
      stored_id = value
    elseif field == '_app' then
      stored_app = value
    elseif string.sub(field, 1, 2) == 'f:' then
      local e, l, d, m = string.match(value, '^([^,]+),([^,]+),([^,]+),(.*)$')
      present[string.sub(field, 3)] = { entered = tonumber(e), inside = tonumber(l), dwelled = tonumber(d), distance = m }
    end
  end

  local out = {}
  local sender_id, sender = stored_id, stored_app -- a sweep's transitions: who last sent a ping
  if mode == 'ping' then
    sender_id, sender = ARGV[6], ARGV[7]
  end
  local point = ''
  local function emit(kind, fence, at, state, distance, threshold)
    local dwell = state and math.floor((at - state.entered) / 1000) or ''
    out[#out + 1] = kind
    out[#out + 1] = fence
    out[#out + 1] = at
    out[#out + 1] = dwell
    out[#out + 1] = distance
    out[#out + 1] = threshold
    redis.call('XADD', stream, 'MAXLEN', '~', most, '*', 'm', device, 'i', sender_id, 's', sender, 'k', kind,
      'f', fence, 'a', at, 'd', dwell, 'x', distance, 'h', threshold, 'p', point)
  end

  if mode == 'ping' then
    local pos = 9
    for _ = 1, tonumber(ARGV[8]) do
      local ts, accurate, n = tonumber(ARGV[pos]), ARGV[pos + 1] == '1', tonumber(ARGV[pos + 3])
      point = ARGV[pos + 2]
      local first = pos + 4
      pos = first + 4 * n
      if ts > last then
        last = ts
        local seen = {}
        for s = first, first + 4 * (n - 1), 4 do
          local fence, inside, distance = ARGV[s], ARGV[s + 1] == '1', ARGV[s + 2]
          seen[fence] = true
          local state = present[fence]
          if not inside then
            if state then
              state.distance = distance
              changed[fence] = true
            end
          elseif not state then
            if accurate then
              present[fence] = { entered = ts, inside = ts, dwelled = 0, distance = '0' }
              changed[fence] = true
              emit('enter', fence, ts, nil, '0', '')
            end
          else
            state.inside, state.distance = ts, '0'
            changed[fence] = true
            local stayed = (ts - state.entered) / 1000
            for threshold in string.gmatch(ARGV[s + 3], '%d+') do
              local t = tonumber(threshold)
              if state.dwelled < t and t <= stayed then
                state.dwelled = t
                emit('dwell', fence, ts, state, '0', t)
              end
            end
          end
        end
        if accurate then
          local gone = {}
          for fence in pairs(present) do
            if not seen[fence] then
              gone[#gone + 1] = fence
            end
          end
          table.sort(gone) -- several exits at one ping: in fence id order, as the reference replay
          for _, fence in ipairs(gone) do
            emit('exit', fence, ts, present[fence], '', '')
            present[fence] = nil
            changed[fence] = true
          end
        end
      end
    end
    redis.call('HSET', key, '_ts', last)
  else
    local now = tonumber(ARGV[6])
    local gone = {}
    for fence, state in pairs(present) do
      if state.inside + timeout <= now then
        gone[#gone + 1] = fence
      end
    end
    table.sort(gone)
    for _, fence in ipairs(gone) do
      local state = present[fence]
      emit('exit', fence, state.inside + timeout, state, state.distance, '')
      present[fence] = nil
      changed[fence] = true
    end
  end

  if #raw == 0 and next(present) == nil then -- present nowhere before or after: nothing to keep or write
    if mode == 'sweep' then
      redis.call('ZREM', due, device) -- its hash is gone (expired, erased): so is its place in the sweeper
    end
    return { stored_id, stored_app, out }
  end

  local oldest = nil
  for fence in pairs(changed) do
    local state = present[fence]
    if state then
      redis.call('HSET', key, 'f:' .. fence,
        state.entered .. ',' .. state.inside .. ',' .. state.dwelled .. ',' .. state.distance)
    else
      redis.call('HDEL', key, 'f:' .. fence)
    end
  end
  for _, state in pairs(present) do
    if oldest == nil or state.inside < oldest then
      oldest = state.inside
    end
  end
  if oldest then
    if mode == 'ping' then
      redis.call('HSET', key, '_id', ARGV[6], '_app', ARGV[7])
    end
    redis.call('ZADD', due, oldest + timeout, device)
  else
    redis.call('HDEL', key, '_id', '_app')
    redis.call('ZREM', due, device)
  end
  redis.call('EXPIRE', key, keep_s)
  remember(registry, key, keep_s)
  return { stored_id, stored_app, out }
end
