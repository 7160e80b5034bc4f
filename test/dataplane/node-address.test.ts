// The node-address check (Engine.checkNodeAddress): os.networkInterfaces() leaves out interfaces
// that are not up and running, so an address on a link that is down must be reported as the link
// being down, not as the address missing. No root: fabricated interface lists, and sysfs for `lo`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NetworkInterfaceInfo } from 'node:os';
import { nodeAddressProblem, nodeAddressState, readLinkState } from '../../src/dataplane/node-address';

const v4 = (address: string, cidr: string): NetworkInterfaceInfo => ({ address, cidr, family: 'IPv4', netmask: '255.255.255.0', mac: '00:00:00:00:00:00', internal: false });
const v6 = (address: string, cidr: string): NetworkInterfaceInfo => ({ address, cidr, family: 'IPv6', netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', internal: false, scopeid: 0 });
const UP = { adminUp: true, running: true, operstate: 'up' };

test('the address on an interface that is up: no problem', () => {
  assert.is(nodeAddressProblem('10.79.0.1', 'o2ed', { o2ed: [v4('10.79.0.1', '10.79.0.1/24')] }, UP), null);
  // on another interface of the node is fine too
  assert.is(nodeAddressProblem('10.79.0.1', 'o2ed', { lo: [], br0: [v4('10.79.0.1', '10.79.0.1/24')] }, UP), null);
});

test('the underlay set down or without a carrier: the link is down (not "no IPv4 address")', () => {
  // what networkInterfaces() gives for a down link: nothing
  const down = nodeAddressProblem('10.79.0.1', 'o2ed', {}, { adminUp: false, running: false, operstate: 'down' });
  assert.is(down, 'node address 10.79.0.1: link o2ed is down (set down: admin state down)');
  const noCarrier = nodeAddressProblem('10.79.0.1', 'o2ed', {}, { adminUp: true, running: false, operstate: 'lowerlayerdown' });
  assert.is(noCarrier, 'node address 10.79.0.1: link o2ed is down (operstate lowerlayerdown: no carrier or peer)');
  assert.is(nodeAddressProblem('10.79.0.1', 'o2ed', {}, null), 'node address 10.79.0.1: its interface o2ed is gone');
});

test('the underlay up without the address: the address is missing, naming what is there', () => {
  assert.is(nodeAddressProblem('10.79.0.1', 'o2ed', { o2ed: [v4('10.79.0.9', '10.79.0.9/24')] }, UP), 'node address 10.79.0.1 is no longer on this node (o2ed has 10.79.0.9/24)');
  assert.is(nodeAddressProblem('10.79.0.1', 'o2ed', {}, UP), 'node address 10.79.0.1 is no longer on this node (o2ed has no IPv4 address)');
});

test('IPv6 as IPv4: the node\'s IPv6 address looked for too (compared canonically); missing, it is said with what the underlay has; the link down said once for both', () => {
  const both = ['10.79.0.1', 'fd88::1'];
  const ok = { o2ed: [v4('10.79.0.1', '10.79.0.1/24'), v6('fd88:0::1', 'fd88::1/64'), v6('fe80::1', 'fe80::1/64')] };
  assert.equal(nodeAddressState(both, 'o2ed', ok, UP), { problem: null, linkDown: false, linkProblem: null, addressProblem: null, missing: [] });
  assert.is(nodeAddressProblem('fd88::1', 'o2ed', ok, UP), null);
  const gone6 = { o2ed: [v4('10.79.0.1', '10.79.0.1/24'), v6('fe80::1', 'fe80::1/64')] };
  const p6 = 'node address fd88::1 is no longer on this node (o2ed has fe80::1/64)';
  assert.equal(nodeAddressState(both, 'o2ed', gone6, UP), { problem: p6, linkDown: false, linkProblem: null, addressProblem: p6, missing: ['fd88::1'] });
  assert.is(nodeAddressProblem('fd88::1', 'o2ed', { o2ed: [v4('10.79.0.1', '10.79.0.1/24')] }, UP), 'node address fd88::1 is no longer on this node (o2ed has no IPv6 address)');
  assert.is(nodeAddressState(both, 'o2ed', {}, UP).problem, 'node address 10.79.0.1 is no longer on this node (o2ed has no IPv4 address); node address fd88::1 is no longer on this node (o2ed has no IPv6 address)');
  const down = nodeAddressState(both, 'o2ed', {}, { adminUp: false, running: false, operstate: 'down' });
  // the log names the addresses behind the link; addressProblem stays null: the link is what is
  // wrong, and whether the addresses are still there cannot be seen while it is down
  assert.equal(down, { problem: 'node addresses 10.79.0.1, fd88::1: link o2ed is down (set down: admin state down)', linkDown: true, linkProblem: 'link o2ed is down (set down: admin state down)', addressProblem: null, missing: both });
  assert.is(nodeAddressState(both, 'o2ed', {}, null).linkDown, true);
});

test('the underlay down or gone is the link\'s problem, never "node address missing" (status\'s two lines and two fields come from linkProblem and addressProblem)', () => {
  const gone = nodeAddressState(['10.79.0.1'], 'o2ed', {}, null);
  assert.is(gone.linkProblem, 'interface o2ed is gone');
  assert.is(gone.addressProblem, null);
  const noCarrier = nodeAddressState(['10.79.0.1', 'fd88::1'], 'o2ed', {}, { adminUp: true, running: false, operstate: 'lowerlayerdown' });
  assert.is(noCarrier.linkProblem, 'link o2ed is down (operstate lowerlayerdown: no carrier or peer)');
  assert.is(noCarrier.addressProblem, null);
  // up without the address: the address only
  const missing = nodeAddressState(['10.79.0.1'], 'o2ed', { o2ed: [v4('10.79.0.9', '10.79.0.9/24')] }, UP);
  assert.is(missing.linkProblem, null);
  assert.is(missing.addressProblem, 'node address 10.79.0.1 is no longer on this node (o2ed has 10.79.0.9/24)');
});

test('the underlay down or gone while the node\'s addresses sit on another interface that is up: the link is down all the same (readiness counts it)', () => {
  const elsewhere = { lo: [v4('10.79.0.1', '10.79.0.1/32')], dummy0: [v6('fd88::1', 'fd88::1/128')] };
  const both = ['10.79.0.1', 'fd88::1'];
  assert.equal(nodeAddressState(both, 'o2ed', elsewhere, { adminUp: false, running: false, operstate: 'down' }),
    { problem: 'link o2ed is down (set down: admin state down)', linkDown: true, linkProblem: 'link o2ed is down (set down: admin state down)', addressProblem: null, missing: [] });
  assert.equal(nodeAddressState(both, 'o2ed', elsewhere, { adminUp: true, running: false, operstate: 'lowerlayerdown' }),
    { problem: 'link o2ed is down (operstate lowerlayerdown: no carrier or peer)', linkDown: true, linkProblem: 'link o2ed is down (operstate lowerlayerdown: no carrier or peer)', addressProblem: null, missing: [] });
  assert.equal(nodeAddressState(both, 'o2ed', elsewhere, null), { problem: 'interface o2ed is gone', linkDown: true, linkProblem: 'interface o2ed is gone', addressProblem: null, missing: [] });
  assert.equal(nodeAddressState(both, 'o2ed', elsewhere, UP), { problem: null, linkDown: false, linkProblem: null, addressProblem: null, missing: [] });
  // the address itself is fine: no problem with it (nodeAddressProblem is about the address)
  assert.is(nodeAddressProblem('10.79.0.1', 'o2ed', elsewhere, null), null);
});

test('readLinkState reads sysfs: lo is up, a name that is no interface has no state', () => {
  const lo = readLinkState('lo');
  assert.ok(lo !== null);
  assert.is(lo!.adminUp, true);
  assert.is(lo!.running, true);
  assert.is(readLinkState('podway-none0'), null);
});

test.run();
