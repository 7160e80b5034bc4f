// IPAM's automatic assignment against several IPReservations at once (libcalico-go's
// getReservedIPs / addrFilter), on the embedded store: reservations that overlap each other and
// entries of one reservation that overlap, an IPReservation holding IPv4 and IPv6 CIDRs (each
// version's assignment reads its own), a reservation covering a whole block (passed over, never
// claimed), and a block that two reservations cover only together (Calico's limit: found address
// by address, nothing in it handed out). Explicit addresses are given even when reserved.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FileKv } from '../../../src/control/kv/file-kv';
import { Ipam } from '../../../src/control/ipam/ipam';
import { IPRESERVATION_PREFIX } from '../../../src/control/ipam/keys';
import { netContains, parseIp, parseNet } from '../../../src/control/ipam/net';
import { assertClean, setup } from './helpers';

const dirs: string[] = [];
process.on('exit', () => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function store(): FileKv {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-ipam-resv-'));
  dirs.push(dir);
  return new FileKv({ dir });
}

async function reserve(kv: FileKv, name: string, reservedCIDRs: string[]): Promise<void> {
  const value = { apiVersion: 'projectcalico.org/v3', kind: 'IPReservation', metadata: { name }, spec: { reservedCIDRs } };
  assert.ok(await kv.create(IPRESERVATION_PREFIX + name, JSON.stringify(value)));
}

const inNet = (ip: string, cidr: string) => netContains(parseNet(cidr)!, parseIp(ip)!.value);
const lastOctets = (ips: string[]) => ips.map((ip) => Number(ip.split('.')[3])).sort((a, b) => a - b);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test('several reservations: overlapping ones, IPv4 and IPv6 in one, one covering a block whole, two covering a block only together', async () => {
  const kv = store();
  try {
    // 10.80.0.0/26: four /28 blocks (.0, .16, .32, .48); fd80::/120: sixteen /124 blocks.
    await setup(kv, {
      pools: [
        { name: 'v4', cidr: '10.80.0.0/26', spec: { blockSize: 28, vxlanMode: 'Always' } },
        { name: 'v6', cidr: 'fd80::/120', spec: { blockSize: 124, vxlanMode: 'Always' } },
      ],
      nodes: ['node1'],
    });
    // block .0: .0-.3 and .2-.3 (overlapping entries of one), .3 and .4-.7 (another, overlapping it)
    await reserve(kv, 'overlap-a', ['10.80.0.0/30', '10.80.0.2/31']);
    await reserve(kv, 'overlap-b', ['10.80.0.3', '10.80.0.4/30']);
    // block .16 whole, with IPv6 entries in the same resource: fd80::/124 whole, fd80::10 alone
    await reserve(kv, 'dual', ['10.80.0.16/28', 'fd80::/124', ' fd80::10 ']);
    // block .48: two halves, each reservation alone covering none of it
    await reserve(kv, 'half-1', ['10.80.0.48/29']);
    await reserve(kv, 'half-2', ['10.80.0.56/29']);
    const ipam = new Ipam(kv, { blockSearch: 'sequential', warn: () => {} });

    const got = await ipam.autoAssign({ node: 'node1', count: 40, handleId: 'h4', attrs: { node: 'node1' } });
    // what is free: .8-.15 in block .0 and all of block .32; nothing else
    assert.equal(lastOctets(got.ips), [...range(8, 15), ...range(32, 47)], got.ips.join(' '));
    assert.is(got.errors?.length, 1, JSON.stringify(got.errors));
    assert.match(got.errors![0]!, 'assigned 24 of 40');
    assert.match(got.errors![0]!, /overlap-a/);
    // the block one reservation covers whole is never claimed (nor read); the one two cover
    // together may be claimed (found address by address), but nothing in it is handed out
    const blocks = (await kv.list('/calico/ipam/v2/assignment/ipv4/block/')).entries.map((e) => e.key.split('/').pop());
    assert.not.ok(blocks.includes('10.80.0.16-28'), `block .16 claimed: ${blocks.join(' ')}`);
    for (const ip of got.ips) for (const r of ['10.80.0.0/29', '10.80.0.16/28', '10.80.0.48/28']) assert.not.ok(inNet(ip, r), `${ip} is reserved (${r})`);

    // IPv6 from the same IPReservation: fd80::/124 passed over whole, fd80::10 skipped in the next block
    const got6 = await ipam.autoAssign({ node: 'node1', count: 3, handleId: 'h6', attrs: { node: 'node1' }, version: 6 });
    assert.equal(got6.errors ?? [], []);
    assert.equal(got6.ips, ['fd80::11', 'fd80::12', 'fd80::13']);
    const blocks6 = (await kv.list('/calico/ipam/v2/assignment/ipv6/block/')).entries.map((e) => e.key.split('/').pop());
    assert.not.ok(blocks6.includes('fd80::-124'), `fd80::/124 claimed: ${blocks6.join(' ')}`);

    // an explicit address is given even when reserved (Calico's AssignIP)
    await ipam.assignIp({ ip: '10.80.0.2', handleId: 'h-explicit', node: 'node1' });
    assert.is((await ipam.allocationOf('10.80.0.2'))?.handleId, 'h-explicit');
    await assertClean(ipam, 'after the assignments');
  } finally {
    await kv.close();
  }
});

test.run();
