/** How often the kernel looks at each WebSocket peer (see Liveness). */
export const LOOK_EVERY_MS = 15_000;

/** Looks a ping may go unanswered (nothing at all heard from the peer) before it is dropped: 30 s. */
const PONG_LOOKS = 2;

/**
 * Whether a WebSocket peer is still there (a half-open TCP connection is not), and whether it
 * hears from the kernel often enough for its own watch (libdck and the guest agent take a kernel
 * silent for 75 s for gone), without pinging every peer every round. A peer that sent a frame
 * since the last look (a request, a guest agent's heartbeat every 15 s, a pong) is there, and one
 * that was also sent a frame (its answers) has heard from the kernel: a ping would tell neither
 * side anything new, and with 1,000 agents the pings and their pongs were about a quarter of what
 * their connections cost the kernel (its CPU profile). A quiet peer is pinged, and dropped when
 * nothing has come from it PONG_LOOKS looks later.
 *
 * A quiet peer that answers is pinged every other look (30 s, as before); a peer that dies is
 * dropped 45 to 60 s after it was last heard (it was 30 to 60 s with a ping every 30 s).
 */
export class Liveness {
  /** A frame came from the peer since the last look. */
  heard = false;
  /** A frame went to the peer since the last look. */
  spoke = false;
  /** Looks since a ping that nothing has answered yet; -1 when no ping is out. */
  private pingOut = -1;

  /** At each look: what to do with the peer. */
  look(): 'ok' | 'ping' | 'drop' {
    const { heard, spoke } = this;
    this.heard = this.spoke = false;
    if (heard) this.pingOut = -1;
    else if (this.pingOut >= 0) return ++this.pingOut >= PONG_LOOKS ? 'drop' : 'ok';
    if (heard && spoke) return 'ok';
    this.pingOut = 0;
    // The ping is a frame the peer hears: with its pong, the next look has nothing to ask.
    this.spoke = true;
    return 'ping';
  }
}
