// The tunnel table's vxlan_old_port counter as the drop reason of `podway counters` and /metrics
// (no root: the reader's figures as nft -j prints them; the real table, kernel and scrape are
// e2e/interop-vxlan-port's, the cache's age nft-counters.test.ts'): a failed read keeps the
// figures, and they never go down within a run when the engine installs the table again (a node
// address change: its counters start from 0).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TunnelDrops } from '../../src/observe/tunnel-drops';
import { tunnelDropsOf } from '../../src/dataplane/nft-tunnels';
import { parseNftCounters } from '../../src/dataplane/nft-counters';

const parseTunnelCounters = (json: string) => tunnelDropsOf(parseNftCounters(json).get('inet podway_tunnels') ?? {});

/** `nft -j list counters table inet podway_tunnels` with vxlan_old_port at these figures. */
const nftJson = (packets: number, bytes: number) => JSON.stringify({ nftables: [
  { metainfo: { json_schema_version: 1 } },
  { counter: { family: 'inet', name: 'vxlan', table: 'podway_tunnels', handle: 1, packets: 999, bytes: 99999 } },
  { counter: { family: 'inet', name: 'vxlan_old_port', table: 'podway_tunnels', handle: 6, packets, bytes } },
] });

test('parseTunnelCounters: the vxlan_old_port counter, not the others; none: 0', () => {
  assert.equal(parseTunnelCounters(nftJson(4, 312)), { vxlanOldPort: { packets: 4, bytes: 312 } });
  assert.equal(parseTunnelCounters('{"nftables":[]}'), { vxlanOldPort: { packets: 0, bytes: 0 } });
  assert.throws(() => parseTunnelCounters('not json'));
  assert.throws(() => parseTunnelCounters('{"nft": []}'), /no "nftables" array/);
});

test('a failed read keeps the figures; a table installed again (counters from 0) goes on from the last read', async () => {
  let text: string | null = nftJson(4, 312);
  let reads = 0;
  const d = new TunnelDrops(async () => (reads++, text === null ? null : parseTunnelCounters(text)));
  assert.equal(d.vxlanOldPort, { packets: 0, bytes: 0 }, 'nothing before the first read');
  await d.refresh();
  assert.equal(d.vxlanOldPort, { packets: 4, bytes: 312 });
  text = nftJson(6, 468);
  await Promise.all([d.refresh(), d.refresh()]);
  assert.is(reads, 3);
  assert.equal(d.vxlanOldPort, { packets: 6, bytes: 468 }, 'the same figures read twice: counted once');
  text = null;
  await d.refresh();
  assert.equal(d.vxlanOldPort, { packets: 6, bytes: 468 }, 'nft failed: kept');
  const failing = new TunnelDrops(async () => { throw new Error('nft gone'); });
  await failing.refresh();
  assert.equal(failing.vxlanOldPort, { packets: 0, bytes: 0 }, 'a reader that throws: no rejection');
  // the engine installed the table again (its counters from 0), then 2 more arrived
  text = nftJson(2, 156);
  await d.refresh();
  assert.equal(d.vxlanOldPort, { packets: 8, bytes: 624 }, 'the new table\'s on top of the old one\'s');
  text = nftJson(3, 234);
  await d.refresh();
  assert.equal(d.vxlanOldPort, { packets: 9, bytes: 702 });
});

test.run();
