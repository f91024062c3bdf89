import { connect } from 'rack/libdck';

const rack = await connect();
const fanout = Number(rack.args.fanout ?? '0');
const kids = fanout > 0 ? await rack.fork({ count: fanout, args: { fanout: rack.args.next ?? '0', next: '0' } }) : [];
console.log(`tree ${rack.pid} (child of ${rack.ppid ?? 'none'}): forked ${kids.map((p) => p.pid).join(' ') || 'nothing'}`);
await rack.status(`forked ${kids.length}`);
// Up until killed: the test kills the tree from its root.
setInterval(() => {}, 1 << 30);
