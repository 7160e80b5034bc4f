// Bad IPv6 input never crashes the pipeline: thousands of mutated and truncated IPv6/NDP/VXLAN
// frames through a pod port, a tun port and the underlay are all taken without an exception, and
// forwarding works afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PortCounter } from '../../src/dataplane/counters';
import { loadFixtures6 } from '../packet/helpers6';
import { fromHex } from '../../src/packet';
import { takeAll, onlyFrame } from './helpers';
import { makeHarness6, frame6, NODE2_6, NODE2_MAC6 } from './helpers6';

test('mutated IPv6 frames on pod, tun and underlay ports: no exception, every frame taken, forwarding intact', () => {
  const h = makeHarness6({ neighbors6: { [NODE2_6]: NODE2_MAC6 } });
  const bases = loadFixtures6().map((f) => fromHex(f.hex));
  let seed = 99;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const ports = [h.port('caliA'), h.port('tunU'), h.infra.underlay];
  let fed = 0;
  for (let n = 0; n < 6000; n++) {
    const base = bases[rnd(bases.length)];
    let f = base.slice();
    for (let m = rnd(4); m >= 0; m--) f[14 + rnd(f.length - 14)] = rnd(256);
    if (rnd(4) === 0) f = f.subarray(0, 14 + rnd(f.length - 13));
    const port = ports[rnd(ports.length)];
    // tun ports carry IP without Ethernet.
    h.receive(port, port === h.port('tunU') ? f.subarray(14) : f);
    fed++;
  }
  takeAll(h);
  const rx = ports.reduce((s, p) => s + h.portCounter(p, PortCounter.RX), 0);
  assert.is(rx, fed, 'every frame was received');
  // Forwarding still works after all that.
  h.receive(h.port('caliA'), frame6('v6pipe_a_to_b'));
  onlyFrame(h, h.port('caliB'), 'A -> B after the fuzz');
});

test.run();
