/**
 * Pipe scripts. ARGV[1] is the pipe's id. A pipe is a hash `pipe:<id>` (size: bytes buffered;
 * nr, nw: open readers and writers; er, ew: 1 once a reader, a writer, was open; owned: 1 if
 * processes held it), beside `pipe:<id>:o` (the PIDs that hold it), `pipe:<id>:e` (open ends:
 * name -> r or w) and `pipe:<id>:d` (the buffered chunks, oldest first); `pipes` lists the
 * group's pipes (its quota). Answers are codes; the kernel words the errors.
 */
const PIPE = `
local B = KEYS[1]
local p = B .. 'pipe:' .. ARGV[1]
local function add(max, owner)
  local n = redis.call('SCARD', B .. 'pipes')
  if n >= tonumber(max) then return n end
  redis.call('SADD', B .. 'pipes', ARGV[1])
  redis.call('HSET', p, 'size', 0, 'nr', 0, 'nw', 0, 'er', 0, 'ew', 0, 'owned', owner == '' and 0 or 1)
  if owner ~= '' then redis.call('SADD', p .. ':o', owner) end
  return -1
end
local function drop(id)
  local q = B .. 'pipe:' .. id
  redis.call('DEL', q, q .. ':o', q .. ':e', q .. ':d')
  redis.call('SREM', B .. 'pipes', id)
end
-- An anonymous pipe nobody holds and no end has open is of no more use.
local function collect(id)
  local q = B .. 'pipe:' .. id
  local h = redis.call('HMGET', q, 'owned', 'nr', 'nw')
  if h[1] == '1' and tonumber(h[2]) + tonumber(h[3]) == 0 and redis.call('SCARD', q .. ':o') == 0 then drop(id) end
end
`;

export const PIPE_SCRIPTS = {
  /** ARGV: id, max, owner PID or ''. Answers -1 (made), or the group's pipe count (quota), or -2 (no group). */
  create: `${PIPE}
if redis.call('EXISTS', B .. 'g') == 0 then return -2 end
return add(ARGV[2], ARGV[3])
`,

  /** ARGV: id, max. Answers -1 (there, or made), the group's pipe count (quota), or -2 (no group). */
  fifo: `${PIPE}
if redis.call('SISMEMBER', B .. 'pipes', ARGV[1]) == 1 then return -1 end
if redis.call('EXISTS', B .. 'g') == 0 then return -2 end
return add(ARGV[2], '')
`,

  /** ARGV: (unused id), pid. The ids of the pipes pid holds. */
  list: `${PIPE}
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', B .. 'pipes')) do
  if redis.call('SISMEMBER', B .. 'pipe:' .. id .. ':o', ARGV[2]) == 1 then out[#out + 1] = id end
end
return out
`,

  /** ARGV: (unused id), ppid, pid. */
  inherit: `${PIPE}
for _, id in ipairs(redis.call('SMEMBERS', B .. 'pipes')) do
  local o = B .. 'pipe:' .. id .. ':o'
  if redis.call('SISMEMBER', o, ARGV[2]) == 1 then redis.call('SADD', o, ARGV[3]) end
end
return 0
`,

  /** ARGV: id, end, mode. 1, or 0 (no such pipe). */
  open: `${PIPE}
if redis.call('SISMEMBER', B .. 'pipes', ARGV[1]) == 0 then return 0 end
if redis.call('HSETNX', p .. ':e', ARGV[2], ARGV[3]) == 1 then
  redis.call('HINCRBY', p, 'n' .. ARGV[3], 1)
  redis.call('HSET', p, 'e' .. ARGV[3], 1)
end
return 1
`,

  /** ARGV: id, end. */
  close: `${PIPE}
local mode = redis.call('HGET', p .. ':e', ARGV[2])
if not mode then return 0 end
redis.call('HDEL', p .. ':e', ARGV[2])
redis.call('HINCRBY', p, 'n' .. mode, -1)
collect(ARGV[1])
return 1
`,

  /** ARGV: id, capacity, data. 1 ok, 0 full, -1 broken (no reader left), -2 gone. */
  write: `${PIPE}
local h = redis.call('HMGET', p, 'size', 'er', 'nr')
if not h[1] then return -2 end
if h[2] == '1' and tonumber(h[3]) == 0 then return -1 end
local size = tonumber(h[1])
local len = string.len(ARGV[3])
if size > 0 and size + len > tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', p .. ':d', ARGV[3])
redis.call('HINCRBY', p, 'size', len)
return 1
`,

  /** ARGV: id, max. Answers {bytes, eof (1 or 0)}. */
  take: `${PIPE}
local h = redis.call('HMGET', p, 'size', 'ew', 'nw')
if not h[1] then return { '', 1 } end
local max = tonumber(ARGV[2])
local d = p .. ':d'
local parts = {}
local n = 0
while n < max do
  local head = redis.call('LPOP', d)
  if not head then break end
  local want = max - n
  if string.len(head) > want then
    redis.call('LPUSH', d, string.sub(head, want + 1))
    head = string.sub(head, 1, want)
  end
  parts[#parts + 1] = head
  n = n + string.len(head)
end
local size = tonumber(h[1]) - n
if n > 0 then redis.call('HSET', p, 'size', size) end
local eof = 0
if size == 0 and h[2] == '1' and tonumber(h[3]) == 0 then eof = 1 end
return { table.concat(parts), eof }
`,

  /** ARGV: (unused id), pid. */
  release: `${PIPE}
for _, id in ipairs(redis.call('SMEMBERS', B .. 'pipes')) do
  if redis.call('SREM', B .. 'pipe:' .. id .. ':o', ARGV[2]) == 1 then collect(id) end
end
return 0
`,

  /** ARGV: (unused id). */
  deleteGroup: `${PIPE}
for _, id in ipairs(redis.call('SMEMBERS', B .. 'pipes')) do drop(id) end
redis.call('DEL', B .. 'pipes')
return 0
`,
};
