/**
 * Mailbox scripts. A receiver's mailbox is a stream `mb:<to>` whose entry ids are the group's
 * message seqs (`msgseq`, increasing, never reused) with fields f (sender), b ('1' binary),
 * d (data) and m (the sender's mid, if any); `mbb` holds each mailbox's unacknowledged bytes.
 * `mid` maps "<from>:<mid>" to the seq first stored, kept until an hour after the message was
 * acknowledged (`midgc`: when each may go), to answer a late resend. ARGV[1] is the caller's clock.
 */
const MAILBOX = `
local B = KEYS[1]
local now = tonumber(ARGV[1])
local DEDUPE_MS = 3600000
-- The box's entries up to seq (all: '+') leave it; their mids are kept an hour more.
local function drain(box, upto)
  local bytes = 0
  for _, e in ipairs(redis.call('XRANGE', box, '-', upto)) do
    local f = {}
    for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
    bytes = bytes + #f.d
    if f.m then redis.call('ZADD', B .. 'midgc', now + DEDUPE_MS, f.f .. ':' .. f.m) end
    redis.call('XDEL', box, e[1])
  end
  for _, k in ipairs(redis.call('ZRANGEBYSCORE', B .. 'midgc', '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('HDEL', B .. 'mid', k)
    redis.call('ZREM', B .. 'midgc', k)
  end
  return bytes
end
`;

export const MAILBOX_SCRIPTS = {
  /**
   * ARGV: now, from, max messages, max bytes, then (to, mid or '', '1' if binary, data) per
   * message. Answers per message its seq, or {count, bytes} of the full mailbox that refused it.
   */
  append: `${MAILBOX}
local from, maxCount, maxBytes = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV, 4 do
  local to, mid, binary, data = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local dup = mid ~= '' and redis.call('HGET', B .. 'mid', from .. ':' .. mid)
  if dup then
    table.insert(out, tonumber(dup))
  else
    local box = B .. 'mb:' .. to
    local count = redis.call('XLEN', box)
    local bytes = tonumber(redis.call('HGET', B .. 'mbb', to) or '0')
    if count >= maxCount or bytes + #data > maxBytes then
      table.insert(out, { count, bytes })
    else
      local seq = redis.call('INCR', B .. 'msgseq')
      if mid ~= '' then
        redis.call('XADD', box, seq .. '-0', 'f', from, 'b', binary, 'd', data, 'm', mid)
        redis.call('HSET', B .. 'mid', from .. ':' .. mid, seq)
      else
        redis.call('XADD', box, seq .. '-0', 'f', from, 'b', binary, 'd', data)
      end
      redis.call('HINCRBY', B .. 'mbb', to, #data)
      table.insert(out, seq)
    end
  end
end
return out
`,

  /** ARGV: now, to, seq. */
  ack: `${MAILBOX}
local bytes = drain(B .. 'mb:' .. ARGV[2], ARGV[3])
if bytes > 0 then redis.call('HINCRBY', B .. 'mbb', ARGV[2], -bytes) end
`,

  /** ARGV: now, to. */
  clear: `${MAILBOX}
drain(B .. 'mb:' .. ARGV[2], '+')
redis.call('DEL', B .. 'mb:' .. ARGV[2])
redis.call('HDEL', B .. 'mbb', ARGV[2])
`,
} as const;
