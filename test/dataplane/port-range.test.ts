// The VXLAN source port range: the node's net.ipv4.ip_local_port_range, read by the engine at start
// in its own network namespace (port-range.ts), and hashed into [LOW, HIGH) as Linux's vxlan does
// (udp_flow_src_port), over IPv4 and IPv6. A namespace of its own (root) for the engine's read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { parseLocalPortRange, readLocalPortRange } from '../../src/dataplane/port-range';
import { innerFlowHash, vxlanSourcePort, VXLAN_SRC_PORT_MIN, VXLAN_SRC_PORT_MAX } from '../../src/packet';
import { makeHarness, frame, onlyFrame, u16, fixIpChecksum, NODE2_MAC } from './helpers';
import { makeHarness6, frame6, RV6, NODE2_6, NODE2_MAC6 } from './helpers6';
import { parseIpv6Bytes } from './helpers6-extra';
import { withNetns } from '../helpers/netns';

test('parse: the file as the kernel writes it; anything else is an error naming the file', () => {
  assert.equal(parseLocalPortRange('32768\t60999\n'), [32768, 60999]);
  assert.equal(parseLocalPortRange('40000 40000'), [40000, 40000]);
  for (const bad of ['', '32768', '60999 32768', '0 100', '1 65536', 'a b', '1 2 3']) {
    assert.throws(() => parseLocalPortRange(bad, 'ports-file'), /^ports-file: /, JSON.stringify(bad));
  }
  // no such file (not Linux): the kernel's default
  assert.equal(readLocalPortRange('/nonexistent/ip_local_port_range'), [VXLAN_SRC_PORT_MIN, VXLAN_SRC_PORT_MAX]);
});

test('the pipeline hashes every flow into [LOW, HIGH) of the range it is given, as the kernel, IPv4 and IPv6', () => {
  const [lo, hi] = [50000, 50008];
  const h = makeHarness({ neighbors: { '10.99.0.2': NODE2_MAC } });
  h.pipe.setVxlanSourcePorts(lo, hi);
  const seed = (h.pipe as unknown as { flowSeed: number }).flowSeed;
  const seen = new Set<number>();
  for (let k = 0; k < 200; k++) {
    const f = frame('a_to_rv');
    f[14 + 4] = k; // another IPv4 id, same flow: same port
    f[14 + 19] = 65 + (k % 60); // another destination in RV's block: another flow
    fixIpChecksum(f, 14);
    h.receive(h.port('caliA'), f);
    const out = onlyFrame(h, h.infra.underlay, 'vxlan').bytes;
    const sport = u16(out, 34);
    assert.ok(sport >= lo && sport < hi, `source port ${sport} in [${lo}, ${hi})`);
    const sent = f.slice();
    sent[22]--; // the TTL the pipeline decremented is not hashed; the rest is the frame it hashed
    assert.is(sport, vxlanSourcePort(innerFlowHash(sent, 0, sent.length, seed), lo, hi));
    seen.add(sport);
  }
  assert.is(seen.size, hi - lo, 'every port of the range but HIGH is used');
  const h6 = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  h6.pipe.setVxlanSourcePorts(lo, hi);
  const f6 = frame6('v6pipe_a_to_b');
  f6.set(parseIpv6Bytes(RV6), 14 + 24);
  h6.receive(h6.port('caliA'), f6);
  const sport6 = u16(onlyFrame(h6, h6.infra.underlay, 'vxlan6').bytes, 14 + 40);
  assert.ok(sport6 >= lo && sport6 < hi, `IPv6: source port ${sport6}`);
  assert.throws(() => h.pipe.setVxlanSourcePorts(60000, 50000), /not a port range/);
});

test('the engine takes its network namespace\'s net.ipv4.ip_local_port_range at start', async () => {
  await withNetns(['sport'], async ([N]) => {
    N.exec('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=45000 45100']);
    const dist = path.resolve(__dirname, '../../src/dataplane');
    const script = [
      `const { Engine } = require(${JSON.stringify(path.join(dist, 'engine'))});`,
      `const { MemoryIO } = require(${JSON.stringify(path.join(dist, 'memory-io'))});`,
      `const { readLocalPortRange } = require(${JSON.stringify(path.join(dist, 'port-range'))});`,
      'const e = new Engine({ io: new MemoryIO(), manageHost: false });',
      'const p = e.pipe;',
      'console.log(JSON.stringify({ read: readLocalPortRange(), v4: [p.sportMin, p.sportMax], v6: [p.v6.sportMin, p.v6.sportMax] }));',
      'process.exit(0);',
    ].join('\n');
    const got = JSON.parse(N.exec(process.execPath, ['-e', script], { timeoutMs: 60_000 }).trim().split('\n').pop()!);
    assert.equal(got, { read: [45000, 45100], v4: [45000, 45100], v6: [45000, 45100] });
  });
});

test.run();
