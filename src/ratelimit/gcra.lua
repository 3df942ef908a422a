-- GCRA over every key of one request, atomically (gcra.rs holds the same arithmetic, explained).
-- KEYS: the limited keys. ARGV: for each key, four numbers: its interval and its tolerance in microseconds,
-- how many requests the caller wants granted (1, or a lease: lease.rs) and how many requests it returns
-- unused from an earlier lease.
-- Returns, for each key, {granted (0 when refused), retry_after_us, reset_after_us}. A key grants as many of
-- the wanted requests as its allowance holds, at least one or the request is refused. The new TATs are
-- stored only when every key grants, so a refused request costs none of its limits anything; returned
-- requests are credited either way.
if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim, which refuses writes after TIME; later versions ignore this.
  redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local result, tats, bases, credited, all = {}, {}, {}, {}, true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[4 * i - 3])
  local tolerance = tonumber(ARGV[4 * i - 2])
  local want = tonumber(ARGV[4 * i - 1])
  local refund = tonumber(ARGV[4 * i])
  local tat = tonumber(redis.call('GET', key) or now) or now
  if refund > 0 then
    tat = tat - refund * interval
    credited[i] = true
  end
  if tat < now then
    tat = now
  end
  tats[i] = tat
  bases[i] = tat
  -- How many requests fit before the TAT would run more than the tolerance ahead of now.
  local available = math.floor((now + tolerance - tat) / interval)
  local granted = math.min(want, available)
  if granted < 1 then
    all = false
    result[#result + 1] = 0
    result[#result + 1] = tat + interval - tolerance - now
    result[#result + 1] = tat - now
  else
    result[#result + 1] = granted
    result[#result + 1] = 0
    result[#result + 1] = tat + granted * interval - now
    tats[i] = tat + granted * interval
  end
end
for i, key in ipairs(KEYS) do
  local store = all
  local tat = tats[i]
  if not all and credited[i] then
    -- Refused, but the returned requests are still credited (the TAT without this request's grant).
    tat = bases[i]
    store = true
  end
  if store then
    -- Expires when the key is idle again: a missing key and an idle one mean the same.
    local ttl_ms = math.max(1, math.ceil((tat - now) / 1000))
    redis.call('SET', key, string.format('%d', tat), 'PX', ttl_ms)
  end
end
return result
