/**
 * Parsers for the /proc files the sampler reads. Each takes the file's text and answers numbers,
 * or throws a one-line Error naming what it could not read (the sampler then skips the sample).
 */

/** /proc/stat's first line: total and idle jiffies of all CPUs, and how many CPUs there are. */
export function parseStat(text: string): { total: number; idle: number; cpus: number } {
  const lines = text.split('\n');
  const cpu = lines[0]?.split(/\s+/);
  if (!cpu || cpu[0] !== 'cpu' || cpu.length < 5) throw new Error('/proc/stat has no "cpu" line');
  const v = cpu.slice(1, 11).map(Number);
  if (v.some((x) => !Number.isFinite(x))) throw new Error('/proc/stat: the cpu line is not numbers');
  // user nice system idle iowait irq softirq steal (guest time is inside user already).
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3]! + (v[4] ?? 0);
  const cpus = lines.filter((l) => /^cpu[0-9]+ /.test(l)).length;
  return { total, idle, cpus: Math.max(1, cpus) };
}

export function parseLoadavg(text: string): [number, number, number] {
  const v = text.trim().split(/\s+/).slice(0, 3).map(Number);
  if (v.length < 3 || v.some((x) => !Number.isFinite(x) || x < 0)) throw new Error('/proc/loadavg is not three numbers');
  return [v[0]!, v[1]!, v[2]!];
}

/** MemTotal and MemAvailable, in bytes. */
export function parseMeminfo(text: string): { total: number; available: number } {
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+([0-9]+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/meminfo has no ${name}`);
    return Number(m[1]) * 1024;
  };
  return { total: kb('MemTotal'), available: kb('MemAvailable') };
}

/** Bytes received and sent by every interface but loopback. */
export function parseNetDev(text: string): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    if (f.length < 9 || !Number.isFinite(f[0]) || !Number.isFinite(f[8])) throw new Error(`/proc/net/dev: the line of ${m[1]} is not numbers`);
    rx += f[0]!;
    tx += f[8]!;
  }
  return { rx, tx };
}

/** /proc/PID/stat: its process group, CPU time (jiffies) and resident pages. */
export function parsePidStat(text: string): { pgrp: number; cpu: number; rssPages: number } {
  // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
  const end = text.lastIndexOf(')');
  if (end < 0) throw new Error('not a /proc/PID/stat line');
  const f = text.slice(end + 2).split(' ');
  // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15) ... rss(24).
  const pgrp = Number(f[2]);
  const cpu = Number(f[11]) + Number(f[12]);
  const rssPages = Number(f[21]);
  if (![pgrp, cpu, rssPages].every(Number.isFinite)) throw new Error('/proc/PID/stat: fields are not numbers');
  return { pgrp, cpu, rssPages };
}
