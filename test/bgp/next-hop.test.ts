// Next hop toward eBGP peers (RFC 4271 5.1.3, BIRD's default): a route learned over iBGP whose next
// hop is on the subnet shared with the one-hop eBGP peer keeps that next hop (third party); any
// other gets ours. keepOriginalNextHop keeps every next hop. Speakers on loopback: 127.0.0.0/8 is
// the shared subnet (lo's), 192.0.2.7 is not on it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker, BgpSpeakerOptions } from '../../src/control/bgp/speaker';
import { loopbackNet, randomPort, waitFor } from './bird';

const quiet = () => undefined;

function speaker(opts: BgpSpeakerOptions): BgpSpeaker {
  return new BgpSpeaker({ connectRetrySeconds: 1, log: quiet, ...opts });
}

async function toTor(keepOriginalNextHop: boolean): Promise<Record<string, string>> {
  const ip = loopbackNet();
  const [pa, pb, pc] = [randomPort(), randomPort(), randomPort()];
  // a: the node that passes routes on; b: its mesh peer (AS 64512); c: the ToR (AS 65000).
  const a = speaker({ localAs: 64512, routerId: ip(2), listenAddress: ip(2), listenPort: pa });
  const b = speaker({ localAs: 64512, routerId: ip(3), listenAddress: ip(3), listenPort: pb });
  const c = speaker({ localAs: 65000, routerId: ip(4), listenAddress: ip(4), listenPort: pc });
  try {
    a.setPeers([
      { address: ip(3), asNumber: 64512, port: pb, localAddress: ip(2) },
      { address: ip(4), asNumber: 65000, port: pc, localAddress: ip(2), keepOriginalNextHop },
    ]);
    b.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(3), passive: true }]);
    c.setPeers([{ address: ip(2), asNumber: 64512, port: pa, localAddress: ip(4), passive: true }]);
    a.setExports([{ prefix: '10.244.1.0/26' }]);
    b.setExports([
      { prefix: '10.244.2.0/26' }, // next hop b itself: on the shared subnet
      { prefix: '10.244.3.0/26', nextHop: '192.0.2.7' }, // off the shared subnet
      { prefix: '10.244.4.0/26', nextHop: ip(4) }, // the ToR's own address
    ]);
    await Promise.all([a.start(), b.start(), c.start()]);
    await waitFor('the ToR learns all four', () => c.learned().length === 4);
    const byPrefix = Object.fromEntries(c.learned().map(r => [r.prefix, r.nextHop]));
    for (const r of c.learned()) assert.equal(r.asPath, [64512], 'AS prepended as to any eBGP peer');
    return { ...byPrefix, a: ip(2), b: ip(3), c: ip(4) };
  } finally {
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  }
}

test('toward an eBGP peer on a shared subnet: the mesh peer\'s next hop is kept, others are ours', async () => {
  const r = await toTor(false);
  assert.is(r['10.244.1.0/26'], r.a, 'our own block: our address');
  assert.is(r['10.244.2.0/26'], r.b, 'third party: the owner on the shared subnet');
  assert.is(r['10.244.3.0/26'], r.a, 'next hop off the shared subnet: ours');
  assert.is(r['10.244.4.0/26'], r.a, 'never the peer\'s own address');
});

test('keepOriginalNextHop keeps every learned next hop', async () => {
  const r = await toTor(true);
  assert.is(r['10.244.1.0/26'], r.a);
  assert.is(r['10.244.2.0/26'], r.b);
  assert.is(r['10.244.3.0/26'], '192.0.2.7');
  assert.is(r['10.244.4.0/26'], r.c);
});

test.run();
