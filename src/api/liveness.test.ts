import { describe, expect, it } from 'vitest';
import { Liveness } from './liveness.js';

/** Runs looks, each after what happened since the previous one; answers what each look said. */
function looks(steps: Array<{ heard?: boolean; spoke?: boolean }>): string[] {
  const l = new Liveness();
  return steps.map(({ heard = false, spoke = false }) => {
    if (heard) l.heard = true;
    if (spoke) l.spoke = true;
    return l.look();
  });
}

describe('liveness of a WebSocket peer', () => {
  it('a peer that sends and is answered between looks is never pinged', () => {
    expect(looks(Array(6).fill({ heard: true, spoke: true }))).toEqual(Array(6).fill('ok'));
  });

  it('a quiet peer that answers each ping is pinged every other look', () => {
    // The pong is heard after the ping; the ping itself counts as the kernel speaking.
    expect(looks([{}, { heard: true }, {}, { heard: true }, {}])).toEqual(['ping', 'ok', 'ping', 'ok', 'ping']);
  });

  it('a peer that sends but hears nothing from the kernel is pinged, so that its own watch hears something', () => {
    expect(looks([{ heard: true }, { heard: true }])).toEqual(['ping', 'ok']);
  });

  it('a ping that nothing answers for two looks drops the peer; anything heard meanwhile keeps it', () => {
    expect(looks([{ heard: true, spoke: true }, {}, {}, {}])).toEqual(['ok', 'ping', 'ok', 'drop']);
    // A late pong keeps it; the kernel has said nothing since the ping, so it pings again.
    expect(looks([{}, {}, { heard: true }, {}, {}])).toEqual(['ping', 'ok', 'ping', 'ok', 'drop']);
  });
});
