// IPReservation (Calico v3.22+) on the embedded store and a real etcd: `podway apply|get|delete`
// store it in Calico's layout, a malformed one is refused naming the field, and automatic
// assignment (`podway ipam assign`, Ipam.autoAssign as the CNI ADD and the VXLAN tunnel address
// use it) never hands out a reserved address, while an explicit address (--ip, Calico's AssignIP)
// is given even when reserved.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KvStore } from '../../src/control/kv/kv';
import { Ipam } from '../../src/control/ipam/ipam';
import { parseIp } from '../../src/control/ipam/net';
import { reconcileTunnelAddrs } from '../../src/control/tunnel-addrs';
import { okInProcess as ok, podwayInProcess as podway, tempDir, Target, embeddedTarget, etcdTarget, stopEtcd } from './cli-kit';

const RES = '/calico/resources/v3/projectcalico.org/';

function pool(name: string, cidr: string, extra = ''): string {
  return `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: ${name}}\nspec: {cidr: ${cidr}, blockSize: ${cidr.includes(':') ? 122 : 26}${extra}}\n`;
}
function node(name: string): string {
  return `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: ${name}}\nspec: {bgp: {ipv4Address: 192.0.2.10/24}}\n`;
}
function reservation(name: string, cidrs: string[]): string {
  return `apiVersion: projectcalico.org/v3\nkind: IPReservation\nmetadata: {name: ${name}}\nspec:\n  reservedCIDRs: [${cidrs.map((c) => JSON.stringify(c)).join(', ')}]\n`;
}

/** Whether `ip` lies in `cidr` (CIDR or bare address). */
function inside(ip: string, cidr: string): boolean {
  const [base, len] = cidr.includes('/') ? cidr.split('/') : [cidr, undefined];
  const a = parseIp(ip)!;
  const b = parseIp(base!)!;
  if (a.version !== b.version) return false;
  const bits = a.version === 4 ? 32 : 128;
  const shift = BigInt(bits - (len === undefined ? bits : Number(len)));
  return a.value >> shift === b.value >> shift;
}

function reservationSuite(target: Target) {
  const test = suite(`IPReservation on ${target.name}`);
  let spec = '';
  let kv: KvStore;
  let work = '';
  test.before.each(async () => {
    ({ spec, kv } = await target.open());
    work = tempDir('podway-ipres-');
  });
  test.after.each(async () => {
    await kv.close();
  });
  const ds = () => ['--datastore', spec];
  const file = (name: string, text: string): string => {
    const p = path.join(work, name);
    writeFileSync(p, text);
    return p;
  };

  test('apply, get, delete round trip in Calico\'s etcd layout', async () => {
    const f = file('res.yaml', reservation('keep-out', ['10.80.0.0/28', '10.80.0.77', 'fd00:80::/124', '10.80.1.5/24']));
    assert.is(await ok(['apply', '-f', f, ...ds()]), "Successfully applied 1 'IPReservation' resource(s)\n");
    const stored = (await kv.get(`${RES}ipreservations/keep-out`))!;
    assert.ok(stored, 'stored under /calico/resources/v3/projectcalico.org/ipreservations/<name>');
    const obj = JSON.parse(stored.value);
    assert.equal(Object.keys(obj), ['kind', 'apiVersion', 'metadata', 'spec']);
    assert.is(obj.kind, 'IPReservation');
    assert.equal(obj.spec, { reservedCIDRs: ['10.80.0.0/28', '10.80.0.77', 'fd00:80::/124', '10.80.1.5/24'] }, 'entries kept as written, as Calico stores them');
    assert.match(obj.metadata.uid, /^[0-9a-f-]{36}$/);

    // calicoctl's aliases and columns: NAME; wide adds CIDRS.
    assert.is(await ok(['get', 'ipreservations', ...ds()]), 'NAME\nkeep-out\n');
    assert.is(await ok(['get', 'reservation', '-o', 'wide', ...ds()]), 'NAME       CIDRS\nkeep-out   10.80.0.0/28,10.80.0.77,fd00:80::/124,10.80.1.5/24\n');
    const yamlText = await ok(['get', 'ipreservation', 'keep-out', '-o', 'yaml', ...ds()]);
    const back = parseYaml(yamlText);
    assert.is(back.kind, 'IPReservation');
    assert.equal(back.spec.reservedCIDRs, obj.spec.reservedCIDRs);
    // The printed YAML applies back (same uid, new revision).
    await ok(['replace', '-f', file('back.yaml', yamlText), ...ds()]);
    const again = (await kv.get(`${RES}ipreservations/keep-out`))!;
    assert.ok(again.modRevision > stored.modRevision);
    assert.is(JSON.parse(again.value).metadata.uid, obj.metadata.uid);

    assert.is(await ok(['delete', 'ipreservation', 'keep-out', ...ds()]), "Successfully deleted 1 'IPReservation' resource(s)\n");
    assert.is(await kv.get(`${RES}ipreservations/keep-out`), null);
    const gone = await podway(['get', 'ipreservation', 'keep-out', ...ds()]);
    assert.is(gone.code, 1);
  });

  test('a malformed reservation is refused naming the field; nothing is stored', async () => {
    const bad = await podway(['apply', '-f', file('bad.yaml', reservation('bad', ['10.80.0.0/24', '10.80.0.300/24'])), ...ds()]);
    assert.is(bad.code, 1);
    assert.match(bad.err, /spec\.reservedCIDRs\[1\]/);
    assert.match(bad.err, /10\.80\.0\.300\/24/);
    const badLen = await podway(['create', '-f', file('badlen.yaml', reservation('bad', ['fd00::/129'])), ...ds()]);
    assert.is(badLen.code, 1);
    assert.match(badLen.err, /spec\.reservedCIDRs\[0\]/);
    const typo = await podway(['apply', '-f', file('typo.yaml', 'apiVersion: projectcalico.org/v3\nkind: IPReservation\nmetadata: {name: bad}\nspec: {reservedCidrs: [10.80.0.0/24]}\n'), ...ds()]);
    assert.is(typo.code, 1);
    assert.match(typo.err, /spec\.reservedCidrs/);
    assert.match(typo.err, /reservedCIDRs/);
    assert.is(await kv.get(`${RES}ipreservations/bad`), null);
    // One written past the validation (by hand, into the store): assignment stops naming it, the
    // entry and its value, rather than hand out an address it might hold back.
    await ok(['apply', '-f', file('base.yaml', `${pool('p', '10.85.0.0/26')}---\n${node('n0')}`), ...ds()]);
    await kv.create(`${RES}ipreservations/hand-made`, JSON.stringify({ kind: 'IPReservation', apiVersion: 'projectcalico.org/v3', metadata: { name: 'hand-made' }, spec: { reservedCIDRs: ['10.85.0.0/30', 'ten.85'] } }));
    const refused = await podway(['ipam', 'assign', '--node', 'n0', ...ds()]);
    assert.is(refused.code, 1);
    assert.match(refused.err, /IPReservation hand-made \(\/calico\/resources\/v3\/projectcalico\.org\/ipreservations\/hand-made\): spec\.reservedCIDRs\[1\]: expected a CIDR or IP address, got "ten\.85"/);
    assert.is((await kv.list('/calico/ipam/v2/assignment/')).entries.length, 0, 'nothing assigned');
  });

  test('automatic assignment skips reserved addresses in a block; an explicit --ip is still given', async () => {
    await ok(['apply', '-f', file('base.yaml', `${pool('p4', '10.81.0.0/24')}---\n${pool('p6', 'fd00:81::/120')}---\n${node('n1')}`), ...ds()]);
    // The first half of the node's first block and three single addresses further on; IPv6 the first 16.
    const reserved = ['10.81.0.0/27', '10.81.0.33', '10.81.0.40/31', 'fd00:81::/124'];
    await ok(['apply', '-f', file('res.yaml', reservation('half', reserved)), ...ds()]);
    const ipam = new Ipam(kv, { blockSearch: 'sequential' });
    const got: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await ipam.autoAssign({ node: 'n1', count: 1, handleId: `h-${i}`, attrs: { node: 'n1' } });
      assert.equal(r.errors, undefined);
      got.push(...r.ips);
    }
    assert.is(got.length, 20);
    assert.is(new Set(got).size, 20);
    for (const ip of got) assert.not.ok(reserved.some((c) => inside(ip, c)), `${ip} is reserved`);
    assert.is(got[0], '10.81.0.32', 'the first unreserved address of the block');
    // A many-address request from the CLI, in the same block and the next: none reserved either.
    const cli = (await ok(['ipam', 'assign', '--node', 'n1', '--count', '30', '--handle', 'cli', ...ds()])).trim().split('\n');
    assert.is(cli.length, 30);
    for (const ip of [...cli, ...got]) assert.not.ok(reserved.some((c) => inside(ip, c)), `${ip} is reserved`);
    const v6 = await ipam.autoAssign({ node: 'n1', count: 5, handleId: 'h6', version: 6 });
    assert.equal(v6.ips, ['fd00:81::10', 'fd00:81::11', 'fd00:81::12', 'fd00:81::13', 'fd00:81::14']);
    // The reserved addresses are still free in the block (not marked, only passed over).
    const block = JSON.parse((await kv.get('/calico/ipam/v2/assignment/ipv4/block/10.81.0.0-26'))!.value);
    assert.is(block.allocations[0], null);
    assert.is(block.allocations[33], null);
    // An explicit address ignores reservations, as Calico's AssignIP does.
    assert.is(await ok(['ipam', 'assign', '--node', 'n1', '--ip', '10.81.0.5', ...ds()]), '10.81.0.5\n');
    await ipam.assignIp({ ip: '10.81.0.33', handleId: 'explicit', attrs: { node: 'n1' }, node: 'n1' });
    assert.is((await ipam.allocationOf('10.81.0.33'))?.handleId, 'explicit');
    // Deleting the reservation makes its addresses assignable again.
    await ok(['delete', 'ipreservation', 'half', ...ds()]);
    const after = await ipam.autoAssign({ node: 'n1', count: 1, handleId: 'after' });
    assert.is(after.ips[0], '10.81.0.0');
  });

  test('a pool reserved whole: its blocks are never claimed, assignment goes to the other pool, then fails naming the reservation', async () => {
    await ok(['apply', '-f', file('base.yaml', `${pool('a', '10.82.0.0/25')}---\n${pool('b', '10.83.0.0/26')}---\n${node('n2')}`), ...ds()]);
    await ok(['apply', '-f', file('res.yaml', reservation('all-of-a', ['10.82.0.0/24'])), ...ds()]);
    const ipam = new Ipam(kv, { blockSearch: 'sequential' });
    for (let i = 0; i < 5; i++) {
      const r = await ipam.autoAssign({ node: 'n2', count: 1, handleId: `w-${i}` });
      assert.equal(r.errors, undefined);
      assert.ok(inside(r.ips[0]!, '10.83.0.0/26'), `${r.ips[0]} from pool b`);
    }
    const blocks = (await kv.list('/calico/ipam/v2/assignment/ipv4/block/')).entries.map((e) => e.key);
    assert.equal(blocks, ['/calico/ipam/v2/assignment/ipv4/block/10.83.0.0-26'], 'no block of pool a was claimed');
    assert.equal((await kv.list('/calico/ipam/v2/host/n2/ipv4/block/')).entries.map((e) => e.key), ['/calico/ipam/v2/host/n2/ipv4/block/10.83.0.0-26']);

    // Pool a alone (--pool): nothing, with an error that says everything is reserved.
    const onlyA = await podway(['ipam', 'assign', '--node', 'n2', '--pool', 'a', ...ds()]);
    assert.is(onlyA.code, 1);
    assert.match(onlyA.err, /every address of the pool is reserved \(IPReservation all-of-a\)/);
    // b reserved too: no pool has a free address.
    await ok(['apply', '-f', file('res2.yaml', reservation('all-of-b', ['10.83.0.0/26'])), ...ds()]);
    const none = await ipam.autoAssign({ node: 'n2', count: 1, handleId: 'none' });
    assert.equal(none.ips, []);
    assert.match(none.errors!.join('; '), /every address of these pools is reserved \(IPReservation all-of-a, all-of-b\)/);
    assert.is((await kv.list('/calico/ipam/v2/assignment/ipv4/block/')).entries.length, 1, 'still no new block');
  });

  test('the VXLAN tunnel address is assigned outside the reservations', async () => {
    await ok(['apply', '-f', file('base.yaml', `${pool('vx', '10.84.0.0/26', ', vxlanMode: Always')}---\n${node('n3')}`), ...ds()]);
    await ok(['apply', '-f', file('res.yaml', reservation('low', ['10.84.0.0/29'])), ...ds()]);
    const r = await reconcileTunnelAddrs(kv, 'n3', { assignV6: false });
    assert.is(r.v4.action, 'assigned');
    assert.is(r.v4.addr, '10.84.0.8');
  });

  return test;
}

reservationSuite(embeddedTarget).run();

const etcdSuite = reservationSuite(etcdTarget);
etcdSuite.after(stopEtcd);
etcdSuite.run();
