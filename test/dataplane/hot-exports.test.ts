/**
 * The modules the forwarding path reads per frame keep their exports objects (and the constant
 * objects they export, e.g. DescFlag, Reason) in V8's fast mode. tsc compiles `import { X } from`
 * into `module_1.X` at every use, so a per-frame `DescFlag.SUPER` is a property load from the
 * exports object; when that object is a dictionary (tsc's getter for `export { X } from` or for
 * re-exporting an import turns it into one), optimized code cannot fold the load and calls V8's
 * generic LoadIC instead: 8% of a pipeline-only run's CPU before frame-pool.ts stopped doing it
 * (bench/README.md). The check needs V8's %HasFastProperties, so it runs in a child node with
 * --allow-natives-syntax.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '..', '..', 'src');

/** Modules whose exports the forwarding path reads per frame or per batch (IPv4 and IPv6). */
const HOT = [
  'dataplane/pipeline', 'dataplane/pipeline6', 'dataplane/frame-pool', 'dataplane/native', 'dataplane/counters',
  'dataplane/nexthops', 'dataplane/nexthops6', 'dataplane/neighbor-queue', 'dataplane/nat', 'dataplane/capture', 'dataplane/trace', 'dataplane/io',
  'packet/arp', 'packet/bytes', 'packet/checksum', 'packet/drop', 'packet/ethernet', 'packet/flowhash', 'packet/icmp',
  'packet/icmpv6', 'packet/ipip', 'packet/ipv4', 'packet/ipv6', 'packet/layout', 'packet/ndp', 'packet/tcp', 'packet/udp',
  'packet/vxlan', 'packet/vxlan6', 'lpm/constants', 'lpm/fib4', 'lpm/fib6', 'lpm/poptrie-layout',
];

/** Runs in the child: lists the exports objects (and exported plain objects; not typed arrays, not
 * native.ts's proxy of the addon, which only tests and benches use) in dictionary mode. */
const PROBE = `
const { isProxy } = require('node:util').types;
const mods = JSON.parse(process.argv[1]);
const slow = [];
const isFast = (o) => %HasFastProperties(o);
for (const [name, file] of mods) {
  const e = require(file);
  if (!isFast(e)) slow.push(name + ': exports');
  for (const [k, v] of Object.entries(e)) {
    if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && !isProxy(v) && !isFast(v)) slow.push(name + ': ' + k);
  }
}
// the probe itself: tsc's output for a re-export (a getter over a property set to undefined first)
const tscReexport = {};
tscReexport.X = void 0;
Object.defineProperty(tscReexport, 'X', { enumerable: true, get: () => 1 });
console.log(JSON.stringify({ slow, controlFast: isFast(tscReexport) }));
`;

test('forwarding-path modules keep fast-mode exports (no dictionary exports objects)', () => {
  const mods = HOT.map((m) => [m, path.join(SRC, m + '.js')]);
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '-e', PROBE, JSON.stringify(mods)], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, `probe failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { slow: string[]; controlFast: boolean };
  // the probe can tell: tsc's re-export pattern is reported as a dictionary on this Node
  assert.is(out.controlFast, false, 'a getter over a re-exported property should make a dictionary');
  assert.equal(out.slow, [], `dictionary-mode exports on the forwarding path: ${out.slow.join(', ')}`);
});

test.run();
