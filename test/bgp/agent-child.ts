// A BgpAgent (as `podway run --bgp`'s model thread runs it) in the network namespace this process
// is started in (`ip netns exec NS node agent-child.js CONFIG`), for tests that need addresses the
// test process does not have. CONFIG (JSON): { node, docs: Calico resources, routerId? }. Prints a
// JSON line every 200 ms: { status, learned, error: update()'s error or null, logs since the last
// line }. On SIGTERM it stops the speaker and exits; with no stdin (its parent gone) too.
import { BgpAgent } from '../../src/control/bgp/agent';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import type { LearnedRoute } from '../../src/control/route-calc';
import { snapshotOf } from '../control/fixtures';

const cfg = JSON.parse(process.argv[2] ?? '{}') as { node: string; docs: Record<string, unknown>[]; routerId?: string };
let learned: readonly LearnedRoute[] = [];
const logs: string[] = [];
const agent = new BgpAgent({
  node: cfg.node,
  ...(cfg.routerId !== undefined ? { routerId: cfg.routerId } : {}),
  createSpeaker: (o) => new BgpSpeaker({ ...o, connectRetrySeconds: 1, log: (_l, m) => logs.push(m) }),
  log: (m) => logs.push(m),
  onLearned: (routes) => (learned = routes),
});
let error: string | null = null;
try {
  agent.update(snapshotOf(...cfg.docs));
} catch (e) {
  error = (e as Error).message;
}
const timer = setInterval(() => process.stdout.write(JSON.stringify({ status: agent.status(), learned, error, logs: logs.splice(0) }) + '\n'), 200);
const end = () => {
  clearInterval(timer);
  void agent.stop({ graceful: false }).finally(() => process.exit(0));
};
process.on('SIGTERM', end);
process.stdin.on('end', end);
process.stdin.resume();
