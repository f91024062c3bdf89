// The smallest RACK app. The parent forks N child VMs (N from its `children` arg), waits for each
// and prints how it ended; a child prints a line and exits with a code of its own.
import { connect } from 'rack/libdck';

const rack = await connect(); // who am I: RACK_URL, RACK_TOKEN, RACK_PID... from dckinit

if (rack.role === 'parent') {
  const n = Number(rack.args.children ?? '3');
  const children = await rack.fork({ count: n, args: { greeting: 'hello' } });
  console.log(`parent ${rack.pid}: forked ${children.map((c) => c.pid).join(', ')}`);
  const codes = {};
  for (let i = 0; i < n; i++) {
    const end = await rack.wait(); // any child
    codes[end.pid] = end.status === 'exited' ? end.code : `${end.status} ${end.signal ?? end.error ?? ''}`;
  }
  console.log(`parent ${rack.pid}: exit codes ${JSON.stringify(codes)}`);
  rack.exit(0);
} else {
  console.log(`${rack.args.greeting} from ${rack.pid}, child of ${rack.ppid}`);
  rack.exit(rack.pid - rack.ppid); // 1, 2, 3, ...: a code of its own
}
