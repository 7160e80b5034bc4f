// AS numbers as Calico's numorstring.ASNumber reads them: a number, "64512", or asdot "1.10";
// the schemas of BGPPeer, BGPConfiguration and Node take all three.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { asNumberFromString } from '../../src/control/as-number';
import { validateResource } from '../../src/control/calico-kinds';

test('asNumberFromString: plain and asdot, out of range refused', () => {
  assert.is(asNumberFromString('64512'), 64512);
  assert.is(asNumberFromString('4294967295'), 4294967295);
  assert.is(asNumberFromString('1.10'), 65546);
  assert.is(asNumberFromString('65535.65535'), 4294967295);
  for (const bad of ['4294967296', '65536.0', '1.65536', '1.2.3', '', 'AS64512', '-1', '1.', '.1', '64512x']) assert.is(asNumberFromString(bad), null, bad);
});

test('schemas take an AS number as a number or a string, and name what they got otherwise', () => {
  const peer = (asNumber: unknown) => validateResource({ apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: '10.99.0.254', asNumber } });
  for (const [given, want] of [[64512, 64512], ['64512', 64512], ['1.10', 65546]] as const) {
    const r = peer(given);
    assert.ok(r.ok, JSON.stringify(r));
    assert.is((r as { value: { spec: { asNumber: number } } }).value.spec.asNumber, want);
  }
  const bad = peer('lots');
  assert.not.ok(bad.ok);
  assert.match(JSON.stringify(bad), /spec\.asNumber.*expected a number, got \\"lots\\"/);
  const conf = validateResource({ apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: '65000' } });
  assert.ok(conf.ok, JSON.stringify(conf));
  const node = validateResource({ apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'n1' }, spec: { bgp: { ipv4Address: '10.99.0.1/24', asNumber: '0.64512' } } });
  assert.ok(node.ok, JSON.stringify(node));
  assert.is((node as { value: { spec: { bgp: { asNumber: number } } } }).value.spec.bgp.asNumber, 64512);
});

test.run();
