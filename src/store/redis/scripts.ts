import { FIRST_PID } from '../../protocol/process.js';

/**
 * The group and process scripts (Lua, run atomically by Redis). KEYS[1] is the group's key
 * base; a process is a JSON string at `p:<pid>` with two fields of the store's own: `reaped`,
 * and `ended_ms` (its ended_at as a number, the order of reapAny). Beside it, kept in the same
 * script as every change: `pids` (all PIDs), `kids:<ppid|root>` (children), `live` (PIDs not
 * ended: the live-process quota and listLive), `count` (processes per status) and
 * `ended:<ppid>` (ended children not reaped, by end time then PID).
 */

/** Answers of requests with an id, kept 10 minutes (as the SQLite engine's request log). */
export const REQUESTS = `
local B = KEYS[1]
local function replay(rid)
  if rid == '' then return nil end
  return redis.call('GET', B .. 'rid:' .. rid)
end
local function remember(rid, answer)
  if rid ~= '' then redis.call('SET', B .. 'rid:' .. rid, answer, 'PX', 600000) end
end
`;

const PROCESSES = `${REQUESTS}
local LIVE = { QUEUED = true, BUILD = true, ACTIVE = true }
local ENDED = { EXITED = true, KILLED = true, ERROR = true }
local function kids(ppid)
  if ppid == cjson.null then return B .. 'kids:root' end
  return B .. 'kids:' .. ppid
end
-- Zero-padded PIDs: members of equal end time sort by PID.
local function member(pid) return string.format('%010d', pid) end
-- Keeps the indexes right for p, whose status was old (nil: a new process).
local function index(p, old)
  if old ~= p.status then
    if old then redis.call('HINCRBY', B .. 'count', old, -1) end
    redis.call('HINCRBY', B .. 'count', p.status, 1)
    if LIVE[p.status] then redis.call('SADD', B .. 'live', p.pid) else redis.call('SREM', B .. 'live', p.pid) end
  end
  if p.ppid ~= cjson.null then
    local ended = B .. 'ended:' .. p.ppid
    if ENDED[p.status] and p.reaped == 0 then redis.call('ZADD', ended, p.ended_ms or 0, member(p.pid))
    else redis.call('ZREM', ended, member(p.pid)) end
  end
end
`;

export const PROCESS_SCRIPTS = {
  /** ARGV: group JSON, '1' if it has user_data, user_data. A gid is created once (its PIDs start once). */
  createGroup: `
local B = KEYS[1]
if redis.call('EXISTS', B .. 'g') == 1 then return redis.error_reply('RACK conflict the group exists already') end
redis.call('HSET', B .. 'g', 'json', ARGV[1], 'next_pid', ${FIRST_PID})
if ARGV[2] == '1' then redis.call('HSET', B .. 'g', 'userdata', ARGV[3]) end
`,

  /** ARGV: rid, live-process quota, forks quota, rows (JSON). Answers {replayed, processes JSON}. */
  insert: `${PROCESSES}
local seen = replay(ARGV[1])
if seen then return { 1, seen } end
local next_pid = redis.call('HGET', B .. 'g', 'next_pid')
if not next_pid then return redis.error_reply('RACK not_found the group does not exist') end
next_pid = tonumber(next_pid)
local rows = cjson.decode(ARGV[4])
local n = #rows
local live = redis.call('SCARD', B .. 'live')
if live + n > tonumber(ARGV[2]) then
  return redis.error_reply(string.format('RACK quota_exceeded quota: the group may have %d live processes; it has %d, and this fork asks for %d more', ARGV[2], live, n))
end
if next_pid + n - ${FIRST_PID} > tonumber(ARGV[3]) then
  return redis.error_reply(string.format('RACK quota_exceeded quota: the group may fork %d processes in all; it has forked %d, and this fork asks for %d more', ARGV[3], next_pid - ${FIRST_PID}, n))
end
redis.call('HSET', B .. 'g', 'next_pid', next_pid + n)
for i, p in ipairs(rows) do
  p.pid = next_pid + i - 1
  p.reaped = 0
  redis.call('SET', B .. 'p:' .. p.pid, cjson.encode(p))
  redis.call('ZADD', B .. 'pids', p.pid, p.pid)
  redis.call('ZADD', kids(p.ppid), p.pid, p.pid)
  index(p, nil)
end
local answer = cjson.encode(rows)
remember(ARGV[1], answer)
return { 0, answer }
`,

  /**
   * ARGV: pid, '1' to apply only while live, patch (JSON), updated_at ('' keeps it), ended_ms
   * ('' keeps it). Answers the new process JSON, or nil.
   */
  update: `${PROCESSES}
local key = B .. 'p:' .. ARGV[1]
local raw = redis.call('GET', key)
if not raw then return false end
local p = cjson.decode(raw)
local old = p.status
if ARGV[2] == '1' and not LIVE[old] then return false end
for k, v in pairs(cjson.decode(ARGV[3])) do p[k] = v end
if ARGV[4] ~= '' then p.updated_at = ARGV[4] end
if ARGV[5] ~= '' then p.ended_ms = tonumber(ARGV[5]) end
local out = cjson.encode(p)
redis.call('SET', key, out)
index(p, old)
return out
`,

  /** ARGV: ppid, rid. Answers the reaped child's JSON, or nil (not remembered: a later try is a new one). */
  reap: `${PROCESSES}
local seen = replay(ARGV[2])
if seen then return seen end
local ended = B .. 'ended:' .. ARGV[1]
local first = redis.call('ZRANGE', ended, 0, 0)[1]
if not first then return false end
local key = B .. 'p:' .. tonumber(first)
local p = cjson.decode(redis.call('GET', key))
p.reaped = 1
local out = cjson.encode(p)
redis.call('SET', key, out)
index(p, p.status)
remember(ARGV[2], out)
return out
`,

  /** ARGV: pids. Answers what pointed at them from outside the group: 't' .. token hash, 'c' .. compute id. */
  remove: `${PROCESSES}
local gone = {}
for _, pid in ipairs(ARGV) do
  local raw = redis.call('GET', B .. 'p:' .. pid)
  if raw then
    local p = cjson.decode(raw)
    redis.call('DEL', B .. 'p:' .. pid)
    redis.call('ZREM', B .. 'pids', pid)
    redis.call('ZREM', kids(p.ppid), pid)
    if p.ppid ~= cjson.null then redis.call('ZREM', B .. 'ended:' .. p.ppid, member(p.pid)) end
    redis.call('SREM', B .. 'live', pid)
    redis.call('HINCRBY', B .. 'count', p.status, -1)
    if p.compute_id ~= cjson.null then table.insert(gone, 'c' .. p.compute_id) end
  end
  local tokens = redis.call('HKEYS', B .. 'ptok:' .. pid)
  for _, h in ipairs(tokens) do
    redis.call('HDEL', B .. 'tokens', h)
    table.insert(gone, 't' .. h)
  end
  redis.call('DEL', B .. 'ptok:' .. pid)
end
return gone
`,

  /** Deletes every key of the group. Answers what pointed at it from outside, as remove does. */
  deleteGroup: `
local B = KEYS[1]
local gone = {}
for _, pid in ipairs(redis.call('ZRANGE', B .. 'pids', 0, -1)) do
  local raw = redis.call('GET', B .. 'p:' .. pid)
  if raw then
    local p = cjson.decode(raw)
    if p.compute_id ~= cjson.null then table.insert(gone, 'c' .. p.compute_id) end
  end
  redis.call('DEL', B .. 'p:' .. pid, B .. 'kids:' .. pid, B .. 'ended:' .. pid, B .. 'sig:' .. pid, B .. 'ptok:' .. pid)
end
for _, h in ipairs(redis.call('HKEYS', B .. 'tokens')) do table.insert(gone, 't' .. h) end
for _, to in ipairs(redis.call('HKEYS', B .. 'mbb')) do redis.call('DEL', B .. 'mb:' .. to) end
for _, k in ipairs(redis.call('ZRANGE', B .. 'shm:keys', 0, -1)) do redis.call('DEL', B .. 'shm:m:' .. k, B .. 'shm:l:' .. k) end
for _, k in ipairs({ 'g', 'pids', 'live', 'count', 'kids:root', 'tokens', 'kills', 'sched', 'pool',
    'shm:keys', 'shm:exp', 'shm:bytes', 'mbb', 'mid', 'midgc', 'msgseq' }) do
  redis.call('DEL', B .. k)
end
return gone
`,

  /** ARGV: token hash, pid, role. */
  putToken: `
local B = KEYS[1]
redis.call('HSET', B .. 'tokens', ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
redis.call('HSET', B .. 'ptok:' .. ARGV[2], ARGV[1], ARGV[3])
`,

  /** ARGV: pid, role. Answers the hashes revoked. */
  revokeToken: `
local B = KEYS[1]
local mine = redis.call('HGETALL', B .. 'ptok:' .. ARGV[1])
local gone = {}
for i = 1, #mine, 2 do
  if mine[i + 1] == ARGV[2] then
    redis.call('HDEL', B .. 'ptok:' .. ARGV[1], mine[i])
    redis.call('HDEL', B .. 'tokens', mine[i])
    table.insert(gone, mine[i])
  end
end
return gone
`,

  /** ARGV: pid. A queued process holds its resources now: no more deadline or user_data of its own. */
  dequeued: `
local B = KEYS[1]
local raw = redis.call('HGET', B .. 'sched', ARGV[1])
if not raw then return end
local e = cjson.decode(raw)
e.queued = false
e.deadline = cjson.null
e.userdata = cjson.null
redis.call('HSET', B .. 'sched', ARGV[1], cjson.encode(e))
`,
} as const;
