import { REQUESTS } from './scripts.js';

/**
 * Shared memory scripts. ARGV[1] is always the caller's clock (epoch ms: TTLs are the kernel's
 * time, as in the SQLite engine). A key is a hash `shm:m:<key>` (k: 'v' value or 'l' list; v: the
 * JSON; n: version; b: a list's item bytes; x: expiry) and a list's items are `shm:l:<key>`;
 * `shm:keys` (by name), `shm:exp` (by expiry) and `shm:bytes` (the group's usage) go with them.
 * Our own expiry, not Redis TTLs: an expired key's bytes must leave the usage, and expire()
 * reports each key once. Checks come before writes: a script that fails part-way is not undone.
 */
const SHM = `${REQUESTS}
local now = tonumber(ARGV[1])
local function meta(key) return B .. 'shm:m:' .. key end
local function items(key) return B .. 'shm:l:' .. key end
local function fail(code, message) error({ err = 'RACK ' .. code .. ' ' .. message }) end
-- Counts delta bytes; a growth past max is refused.
local function account(delta, max)
  if delta == 0 then return end
  local used = tonumber(redis.call('GET', B .. 'shm:bytes') or '0')
  if delta > 0 and used + delta > max then
    fail('quota_exceeded', string.format("quota: the group's shared memory may hold %d bytes; it holds %d, and this write needs %d more", max, used, delta))
  end
  redis.call('SET', B .. 'shm:bytes', math.max(0, used + delta))
end
local function row(key)
  local f = redis.call('HGETALL', meta(key))
  if #f == 0 then return nil end
  local r = {}
  for i = 1, #f, 2 do r[f[i]] = f[i + 1] end
  return r
end
-- The bytes a key holds: its name, and its value or its items.
local function size(key, r)
  if not r then return 0 end
  if r.k == 'v' then return #key + #r.v end
  return #key + tonumber(r.b)
end
local function drop(key, r)
  account(-size(key, r), 0)
  redis.call('DEL', meta(key), items(key))
  redis.call('ZREM', B .. 'shm:keys', key)
  redis.call('ZREM', B .. 'shm:exp', key)
end
-- The key's row; an expired key is dropped on sight.
local function live(key)
  local r = row(key)
  if r and r.x and tonumber(r.x) <= now then
    drop(key, r)
    return nil
  end
  return r
end
local function value(key)
  local r = live(key)
  if r and r.k ~= 'v' then fail('conflict', 'key "' .. key .. '" holds a list, not a value') end
  return r
end
local function list(key)
  local r = live(key)
  if r and r.k ~= 'l' then fail('conflict', 'key "' .. key .. '" holds a value, not a list') end
  return r
end
-- Writes a value (over whatever the key held) with its version and expiry (nil: none).
local function write(key, json, version, x)
  redis.call('DEL', meta(key), items(key))
  if x then
    redis.call('HSET', meta(key), 'k', 'v', 'v', json, 'n', version, 'x', x)
    redis.call('ZADD', B .. 'shm:exp', x, key)
  else
    redis.call('HSET', meta(key), 'k', 'v', 'v', json, 'n', version)
    redis.call('ZREM', B .. 'shm:exp', key)
  end
  redis.call('ZADD', B .. 'shm:keys', 0, key)
end
local function bump(r) if r then return tonumber(r.n) + 1 end return 1 end
`;

export const SHM_SCRIPTS = {
  /** ARGV: now, key. Answers {json, version} or {}. */
  get: `${SHM}
local r = value(ARGV[2])
if not r then return {} end
return { r.v, tonumber(r.n) }
`,

  /** ARGV: now, key, json, ttl ms ('' for none), max bytes. Answers the version. */
  set: `${SHM}
local key, json = ARGV[2], ARGV[3]
local old = live(key)
account(#key + #json - size(key, old), tonumber(ARGV[5]))
-- A value over a list starts again at version 1, as a new key.
local version = 1
if old and old.k == 'v' then version = bump(old) end
local x = nil
if ARGV[4] ~= '' then x = now + tonumber(ARGV[4]) end
write(key, json, version, x)
return version
`,

  /** ARGV: now, key. Answers 1 if the key was there. */
  delete: `${SHM}
local r = live(ARGV[2])
if not r then return 0 end
drop(ARGV[2], r)
return 1
`,

  /** ARGV: now, key, by, max bytes, rid. Answers the new value (decimal text). */
  incr: `${SHM}
local seen = replay(ARGV[5])
if seen then return seen end
local key = ARGV[2]
local r = value(key)
local cur = 0
if r then
  if not string.match(r.v, '^%-?%d+$') or math.abs(tonumber(r.v)) > 9007199254740991 then
    fail('conflict', 'key "' .. key .. '" does not hold an integer')
  end
  cur = tonumber(r.v)
end
local nxt = cur + tonumber(ARGV[3])
if math.abs(nxt) > 9007199254740991 then fail('conflict', 'incrementing key "' .. key .. '" would overflow') end
local text = string.format('%d', nxt)
account(#key + #text - size(key, r), tonumber(ARGV[4]))
write(key, text, bump(r), r and r.x)
remember(ARGV[5], text)
return text
`,

  /** ARGV: now, key, '1' if a value is expected ('0': absent), expected json, json, max bytes, rid. Answers [ok, current] (JSON). */
  cas: `${SHM}
local seen = replay(ARGV[7])
if seen then return seen end
local key, json = ARGV[2], ARGV[5]
local r = value(key)
local current = r and r.v
local answer
if (ARGV[3] == '0' and not current) or (ARGV[3] == '1' and current == ARGV[4]) then
  account(#key + #json - size(key, r), tonumber(ARGV[6]))
  write(key, json, bump(r), r and r.x)
  answer = cjson.encode({ true, json })
else
  answer = cjson.encode({ false, current or cjson.null })
end
remember(ARGV[7], answer)
return answer
`,

  /** ARGV: now, key, '1' for the left end, max bytes, rid, values... Answers the new length (text). */
  push: `${SHM}
local seen = replay(ARGV[5])
if seen then return seen end
local key = ARGV[2]
local r = list(key)
local add = 0
for i = 6, #ARGV do add = add + #ARGV[i] end
if r then
  account(add, tonumber(ARGV[4]))
  redis.call('HINCRBY', meta(key), 'n', 1)
  redis.call('HINCRBY', meta(key), 'b', add)
else
  account(#key + add, tonumber(ARGV[4]))
  redis.call('HSET', meta(key), 'k', 'l', 'n', 1, 'b', add)
  redis.call('ZADD', B .. 'shm:keys', 0, key)
end
local cmd = ARGV[3] == '1' and 'LPUSH' or 'RPUSH'
local len = 0
for i = 6, #ARGV do len = redis.call(cmd, items(key), ARGV[i]) end
local answer = tostring(len)
remember(ARGV[5], answer)
return answer
`,

  /** ARGV: now, key, '1' for the left end, rid. Answers the item, or nil (not remembered: a blocking pop tries again). */
  pop: `${SHM}
local seen = replay(ARGV[4])
if seen then return seen end
local key = ARGV[2]
if not list(key) then return false end
local item = redis.call(ARGV[3] == '1' and 'LPOP' or 'RPOP', items(key))
if not item then return false end
account(-#item, 0)
redis.call('HINCRBY', meta(key), 'b', -#item)
-- An empty list is no key at all.
if redis.call('LLEN', items(key)) == 0 then drop(key, row(key)) else redis.call('HINCRBY', meta(key), 'n', 1) end
remember(ARGV[4], item)
return item
`,

  /** ARGV: now, key, start, stop. */
  range: `${SHM}
if not list(ARGV[2]) then return {} end
return redis.call('LRANGE', items(ARGV[2]), ARGV[3], ARGV[4])
`,

  /** ARGV: now, key. */
  len: `${SHM}
if not list(ARGV[2]) then return 0 end
return redis.call('LLEN', items(ARGV[2]))
`,

  /** ARGV: now, prefix. The live keys with that prefix, sorted (bytewise), at most 10000. */
  keys: `${SHM}
local min, max = '-', '+'
if ARGV[2] ~= '' then min, max = '[' .. ARGV[2], '[' .. ARGV[2] .. '\\255' end
local out = {}
for _, k in ipairs(redis.call('ZRANGEBYLEX', B .. 'shm:keys', min, max)) do
  local x = redis.call('ZSCORE', B .. 'shm:exp', k)
  if not x or tonumber(x) > now then
    table.insert(out, k)
    if #out == 10000 then break end
  end
end
return out
`,

  /** ARGV: now. Drops the keys whose TTL has passed and answers them. */
  expire: `${SHM}
local gone = redis.call('ZRANGEBYSCORE', B .. 'shm:exp', '-inf', now)
for _, k in ipairs(gone) do drop(k, row(k)) end
return gone
`,
} as const;
