-- GCRA over every key of one request, atomically (gcra.rs holds the same arithmetic, explained).
-- KEYS: the limited keys. ARGV: for each key, its interval and its tolerance, in microseconds.
-- Returns, for each key, {allowed (1 or 0), retry_after_us, reset_after_us}. The new TATs are stored only
-- when every key allows, so a refused request costs none of its limits anything.
if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim, which refuses writes after TIME; later versions ignore this.
  redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local result, tats, all = {}, {}, true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now) or now
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if now < allow_at then
    all = false
    result[#result + 1] = 0
    result[#result + 1] = allow_at - now
    result[#result + 1] = tat - now
  else
    result[#result + 1] = 1
    result[#result + 1] = 0
    result[#result + 1] = new_tat - now
    tats[i] = new_tat
  end
end
if all then
  for i, key in ipairs(KEYS) do
    -- Expires when the key is idle again: a missing key and an idle one mean the same.
    local ttl_ms = math.max(1, math.ceil((tats[i] - now) / 1000))
    redis.call('SET', key, string.format('%d', tats[i]), 'PX', ttl_ms)
  end
end
return result
