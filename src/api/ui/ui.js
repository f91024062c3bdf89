// The kernel's live view: groups, each group's process tree with status, app status and usage
// sparklines, queued forks and IPC counters, kept up to date by the kernel's WebSocket events.
// Plain browser JavaScript: no build step, no CDN. Every text from the kernel goes in with
// textContent (an app's status is the app's own text).
'use strict';

const HISTORY = 30;
const view = { groups: new Map(), ws: null, nextId: 1, pending: new Map() };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function bytes(n) {
  const u = ['B', 'K', 'M', 'G', 'T'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)}${u[i]}`;
}

function spark(values) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${HISTORY - 1} 100`);
  svg.setAttribute('preserveAspectRatio', 'none');
  if (values.length > 1) {
    const top = Math.max(100, ...values);
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    const x0 = HISTORY - values.length;
    line.setAttribute('points', values.map((v, i) => `${x0 + i},${100 - (v / top) * 100}`).join(' '));
    svg.append(line);
  }
  return svg;
}

function setState(text, cls) {
  const s = $('#state');
  s.textContent = text;
  s.className = `state ${cls}`;
}

// ---- the WebSocket: calls by id, events to the view -------------------------------------------

function call(op, params = {}) {
  return new Promise((resolve, reject) => {
    const id = view.nextId++;
    view.pending.set(id, { resolve, reject });
    view.ws.send(JSON.stringify({ id, op, ...params }));
  });
}

function connect(token) {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
  // A browser cannot set an Authorization header on a WebSocket: the token rides in the
  // subprotocol list of the handshake instead (the kernel answers with "rack.v1" only).
  let ws;
  try {
    ws = new WebSocket(url, ['rack.v1', `rack.bearer.${token}`]);
  } catch {
    setState('this token cannot be sent in a WebSocket handshake', 'down');
    return;
  }
  view.ws = ws;
  setState('connecting…', '');
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (typeof f.id === 'number') {
      const p = view.pending.get(f.id);
      view.pending.delete(f.id);
      if (p) (f.ok ? p.resolve(f.result) : p.reject(new Error(f.error.message)));
    } else if (f.event === 'process') onProcess(f.process);
    else if (f.event === 'usage') onUsage(f.gid, f.pid, f.usage);
  };
  let opened = false;
  ws.onclose = () => {
    for (const p of view.pending.values()) p.reject(new Error('disconnected'));
    view.pending.clear();
    if (!opened) {
      // Refused at the handshake: most likely the token.
      setState('the kernel refused the connection: check the token', 'down');
      sessionStorage.removeItem('rack-token');
      $('#login').classList.remove('hidden');
      return;
    }
    setState('disconnected: reconnecting in 3 s', 'down');
    setTimeout(() => connect(token), 3000);
  };
  ws.onopen = async () => {
    opened = true;
    try {
      await call('hello');
      const { groups } = await call('group.list');
      setState(`connected: ${groups.length} group${groups.length === 1 ? '' : 's'}`, 'up');
      $('#login').classList.add('hidden');
      for (const g of groups) await watch(g);
    } catch (err) {
      setState(`refused: ${err.message}`, 'down');
    }
  };
}

// ---- the model ---------------------------------------------------------------------------------

async function watch(group) {
  const g = { group, processes: new Map(), usage: new Map(), pool: null, ipc: null, dirty: false };
  view.groups.set(group.gid, g);
  await call('subscribe', { gid: group.gid });
  await call('usage.subscribe', { gid: group.gid });
  for (const p of (await call('list', { gid: group.gid })).processes) g.processes.set(p.pid, p);
  const u = await call('usage.group', { gid: group.gid, history: HISTORY });
  for (const p of u.processes) g.usage.set(p.pid, p.history.map((s) => s));
  g.ipc = u.ipc;
  g.pool = await call('pool.show', { gid: group.gid });
  render(g);
}

function onProcess(p) {
  const g = view.groups.get(p.gid);
  if (!g) return;
  g.processes.set(p.pid, p);
  if (p.status === 'EXITED' || p.status === 'KILLED' || p.status === 'ERROR') g.usage.delete(p.pid);
  refreshSoon(g);
  render(g);
}

function onUsage(gid, pid, usage) {
  const g = view.groups.get(gid);
  if (!g) return;
  const h = g.usage.get(pid) || [];
  h.push(usage);
  if (h.length > HISTORY) h.shift();
  g.usage.set(pid, h);
  render(g);
}

// The queue and the IPC counters change with the processes: read again after a burst of events.
function refreshSoon(g) {
  if (g.dirty) return;
  g.dirty = true;
  setTimeout(async () => {
    g.dirty = false;
    try {
      g.pool = await call('pool.show', { gid: g.group.gid });
      g.ipc = (await call('usage.group', { gid: g.group.gid })).ipc;
      render(g);
    } catch { /* disconnected: the reconnect reads everything again */ }
  }, 300);
}

setInterval(() => { for (const g of view.groups.values()) refreshSoon(g); }, 5000);

// ---- drawing -----------------------------------------------------------------------------------

function poolFact(name, used, cap) {
  const bar = el('span', { class: 'bar' }, el('i'));
  bar.firstChild.style.width = cap ? `${Math.min(100, (used / cap) * 100)}%` : '0%';
  return el('span', {}, `${name} `, el('b', {}, `${Math.round(used * 10) / 10}/${cap === null ? '∞' : cap}`), bar);
}

function render(g) {
  let card = document.querySelector(`[data-gid="${CSS.escape(g.group.gid)}"]`);
  if (!card) {
    card = el('section', { class: 'group', 'data-gid': g.group.gid });
    $('#groups').append(card);
  }
  const pool = g.pool;
  const facts = el('div', { class: 'facts' });
  if (pool) {
    facts.append(poolFact('instances', pool.group.used.instances, pool.group.capacity.instances ?? pool.kernel.capacity.instances));
    facts.append(poolFact('vCPUs', pool.group.used.vcpus, pool.group.capacity.vcpus ?? pool.kernel.capacity.vcpus));
    facts.append(poolFact('RAM MiB', pool.group.used.ram_mb, pool.group.capacity.ram_mb ?? pool.kernel.capacity.ram_mb));
  }
  if (g.ipc) facts.append(el('span', { class: 'ipc' }, 'IPC ', el('b', {}, `${g.ipc.messages}`), ' messages · ', el('b', {}, `${g.ipc.shm}`), ' shm · ', el('b', {}, `${g.ipc.pipes}`), ' pipe writes · ', el('b', {}, `${g.ipc.files}`), ' file ops'));

  const table = el('table', {}, el('tr', {}, ...['PID', 'name', 'status', 'app', 'CPU', '', 'RSS', 'app status'].map((h) => el('th', {}, h))));
  const kids = new Map();
  const roots = [];
  const all = [...g.processes.values()].sort((a, b) => a.pid - b.pid);
  for (const p of all) {
    if (p.ppid !== null && g.processes.has(p.ppid)) {
      if (!kids.has(p.ppid)) kids.set(p.ppid, []);
      kids.get(p.ppid).push(p);
    } else roots.push(p);
  }
  const row = (p, depth) => {
    const h = g.usage.get(p.pid) || [];
    const last = h[h.length - 1];
    const ended = p.status === 'EXITED' || p.status === 'KILLED' || p.status === 'ERROR';
    const outcome = p.status === 'EXITED' ? ` ${p.exit_code}` : p.signal ? ` ${p.signal}` : '';
    table.append(el('tr', { class: ended ? 'ended' : '', 'data-pid': String(p.pid), 'data-status': p.status },
      el('td', {}, String(p.pid)),
      el('td', { class: 'name' }, `${'\u00a0\u00a0'.repeat(depth)}${depth ? '└ ' : ''}${p.name}`),
      el('td', {}, el('span', { class: `badge s-${p.status}` }, p.status + outcome)),
      el('td', {}, p.app_state),
      el('td', {}, last ? `${last.app_cpu_pct.toFixed(1)}%` : ''),
      el('td', {}, ended ? '' : spark(h.map((s) => s.app_cpu_pct))),
      el('td', {}, last ? bytes(last.app_rss) : ''),
      el('td', { class: 'app-status' }, p.error || p.app_status),
    ));
    for (const k of kids.get(p.pid) || []) row(k, depth + 1);
  };
  for (const r of roots) row(r, 0);
  const queue = pool && pool.queue.length
    ? el('div', { class: 'queue' }, `queued forks: ${pool.queue.map((q) => `${q.pid} (#${q.position}, priority ${q.priority}, waits for the ${q.waiting_for === 'group' ? "group's" : 'kernel-wide'} pool)`).join(', ')}`)
    : null;
  const parts = [el('h2', {}, `${g.group.name} `, el('code', {}, g.group.gid)), facts, all.length ? table : el('p', { class: 'empty' }, 'no processes yet')];
  if (queue) parts.push(queue);
  card.replaceChildren(...parts);
}

// ---- start -------------------------------------------------------------------------------------

$('#login').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = $('#token').value.trim();
  sessionStorage.setItem('rack-token', token);
  connect(token);
});
const saved = sessionStorage.getItem('rack-token');
if (saved) connect(saved);
