/**
 * The BGP speaker after the node is renumbered (root, network namespaces, BIRD 2 killed by PID).
 * node1 runs `podway run --bgp` on the embedded datastore with its address autodetected and
 * re-detected every 300 ms (--autodetect-poll-interval); node2 is a calico-node with BIRD
 * (bgp-kit calicoNodeBird) in the node-to-node mesh with it, forwarding with its kernel.
 * node1's IPv4 address changes (10.99.0.1 -> 10.99.0.31, as a DHCP renumbering): podway writes
 * the new address to its Node, and, as calico-node's BIRD config uses the node's IPv4 address as
 * router ID and source address, the speaker must come back with the new router ID and the
 * session with BIRD must be established again from the new address. node2's confd would
 * re-render its BIRD config from the Node (peer Mesh_10_99_0_31); the test does that. Then BIRD
 * must see router ID 10.99.0.31, learn node1's block with next hop 10.99.0.31 (and put it in
 * node2's kernel), podway must learn node2's block again, and the pods must talk again. The
 * pair also swaps roles (Calico compares the addresses as text; toward the greater one a node
 * waits): podway waited for BIRD's connection to 10.99.0.1 ("10.99.0.1" < "10.99.0.2"), and
 * must now connect itself, from 10.99.0.31 ("10.99.0.31" > "10.99.0.2").
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Lab, LabKvStore, run } from '../../src/lab/lab';
import { applyResource, JsonObject } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, logTail, until, waitLog } from './e2e-kit';
import { Birds, BirdProcess, nodesOnOneSubnet, calicoNodeBird, kernelRoutesVia, routesVia, peerState, assertPodPing } from './bgp-kit';

const NEW_IP = '10.99.0.31';
const NODE1_KEY = '/calico/resources/v3/projectcalico.org/nodes/node1';

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let birds: Birds | null = null;
let bird: BirdProcess;
let ok = false;

const protocolOf = (ip: string) => `Mesh_${ip.replace(/\./g, '_')}`;

async function routerId(): Promise<string | null> {
  return ((await controlRequest(lab!.node('node1').control, { cmd: 'node-status' }, 5000)) as { routerId: string | null }).routerId;
}

/** What BIRD on node2 says about its mesh protocol toward `ip`. */
const birdProtocol = (ip: string) => bird.birdc('show', 'protocols', 'all', protocolOf(ip));

test.before(async () => {
  if (!isRoot()) throw new Error('BGP e2e tests need root (network namespaces)');
  lab = guard(new Lab(nodesOnOneSubnet(2)));
  birds = new Birds(lab);
  lab.build();
  lab.setMode('direct');
  // The address monitor writes the Node: a datastore podway can write (not a file).
  store = await lab.openKvStore('embedded', 'podway-bgp-renumber-');
  await lab.useKvDatastore(store.kv, store.spec);
  const [n1, n2] = [lab.node('node1'), lab.node('node2')];
  // node2 is a calico-node: its Node is registered (by calico-node, here by the test), its BIRD
  // meshes with node1 and forwards with its kernel (pod /32 on the cali interface, proxy ARP).
  const node2 = parseAllDocuments(lab.resources('direct')).map((d) => d.toJS() as JsonObject)
    .find((o) => o.kind === 'Node' && (o.metadata as { name: string }).name === 'node2')!;
  await applyResource(store.kv, node2);
  const web2 = lab.pod('web-2');
  run('ip', ['netns', 'exec', n2.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  run('ip', ['netns', 'exec', n2.ns, 'sysctl', '-qw', `net.ipv4.conf.${web2.ifname}.proxy_arp=1`]);
  run('ip', ['-n', n2.ns, 'route', 'add', `${web2.ip}/32`, 'dev', web2.ifname, 'scope', 'link']);
  bird = await birds.start(n2.ns, 'node2-bird', calicoNodeBird(n2, [n1]));
  await lab.startPodway('node1', 20_000, ['--bgp', '--autodetect-poll-interval', '300ms']);
});

test.after(async () => {
  if (!lab) return;
  if (!ok) console.log(`${logTail(lab, 30)}\n--- node2's BIRD:\n${bird?.birdc('show', 'protocols', 'all') ?? ''}`);
  await birds?.killAll();
  await teardown(lab);
  await store?.close();
});

test('before: the mesh session with BIRD is up with router ID 10.99.0.1; each side routes the other\'s block via its address; pods talk', async () => {
  const [n1, n2] = [lab!.node('node1'), lab!.node('node2')];
  assert.ok(await until(async () => (await peerState(lab!, 'node1', n2.ip)) === 'Established', 30_000, 250), `podway's session with ${n2.ip}:\n${birdProtocol(n1.ip)}`);
  assert.is(await routerId(), n1.ip);
  assert.match(birdProtocol(n1.ip), /Neighbor ID:\s+10\.99\.0\.1\n/);
  assert.ok(await until(() => kernelRoutesVia(n2.ns, n1.block, n1.ip), 20_000, 250), `node2's kernel routes ${n1.block} via ${n1.ip}:\n${run('ip', ['-n', n2.ns, 'route'])}`);
  assert.ok(await until(() => routesVia(lab!, 'node1', n2.block, 'direct', n2.ip), 20_000, 250), `node1 routes ${n2.block} via ${n2.ip}`);
  await assertPodPing(lab!, 'web-1', 'web-2', 3, 62);
  await assertPodPing(lab!, 'web-2', 'web-1', 3, 62);
});

test('node1 renumbered: the speaker comes back with router ID 10.99.0.31, the session with BIRD is up again from the new address, BIRD routes node1\'s block via it, pods talk', async () => {
  const [n1, n2] = [lab!.node('node1'), lab!.node('node2')];
  const old = n1.ip;
  const mark = n1.log.length;
  run('ip', ['-n', n1.ns, 'addr', 'del', `${old}/24`, 'dev', 'eth0']);
  run('ip', ['-n', n1.ns, 'addr', 'add', `${NEW_IP}/24`, 'dev', 'eth0']);
  run('ip', ['-n', n1.ns, 'route', 'replace', 'default', 'via', '10.99.0.254']);
  n1.ip = NEW_IP;
  const registered = async () => (JSON.parse((await store!.kv.get(NODE1_KEY))!.value) as { spec: { bgp: { ipv4Address: string } } }).spec.bgp.ipv4Address;
  assert.ok(await until(async () => (await registered()) === `${NEW_IP}/24`, 10_000, 100), `node1's Node has the new address: ${await registered()}`);

  // node2's confd re-renders BIRD's config from the Node: the mesh peer is the new address.
  writeFileSync(path.join(lab!.dir, 'node2-bird.conf'), calicoNodeBird(n2, [n1]));
  const conf = bird.birdc('configure');
  assert.match(conf, /Reconfigured|Reconfiguration in progress/, conf);

  assert.ok(await until(async () => (await routerId()) === NEW_IP, 10_000, 100), `podway's router ID: ${await routerId()}`);
  assert.ok(await waitLog(n1, /bgp: speaker up: AS 64512, router ID 10\.99\.0\.31,/, mark, 10_000), `the speaker is up with the new router ID: ${n1.log.slice(mark).join(' | ')}`);
  assert.ok(await until(async () => (await peerState(lab!, 'node1', n2.ip)) === 'Established', 30_000, 250),
    `podway's session with ${n2.ip} is up again: ${await peerState(lab!, 'node1', n2.ip)}\n${birdProtocol(NEW_IP)}\n${n1.log.slice(mark).join('\n')}`);
  assert.ok(await until(() => /Established/.test(birdProtocol(NEW_IP)), 10_000, 250), `BIRD's ${protocolOf(NEW_IP)}:\n${birdProtocol(NEW_IP)}`);
  const proto = birdProtocol(NEW_IP);
  assert.match(proto, /Neighbor ID:\s+10\.99\.0\.31\n/, `BIRD sees router ID ${NEW_IP}:\n${proto}`);
  assert.match(proto, /Source address:\s+10\.99\.0\.2\n/);
  assert.not.match(bird.birdc('show', 'protocols'), new RegExp(protocolOf(old) + '\\s'), 'the old mesh protocol is gone from BIRD');

  // node1's block: in BIRD with the new next hop, and in node2's kernel via the new address.
  assert.ok(await until(() => /BGP\.next_hop: 10\.99\.0\.31\n/.test(bird.birdc('show', 'route', n1.block, 'all')), 20_000, 250), `BIRD's route to ${n1.block}:\n${bird.birdc('show', 'route', n1.block, 'all')}`);
  assert.not.match(bird.birdc('show', 'route', n1.block, 'all'), /BGP\.next_hop: 10\.99\.0\.1\n/, 'no route left via the old address');
  assert.ok(await until(() => kernelRoutesVia(n2.ns, n1.block, NEW_IP), 20_000, 250), `node2's kernel routes ${n1.block} via ${NEW_IP}:\n${run('ip', ['-n', n2.ns, 'route'])}`);
  assert.not.ok(kernelRoutesVia(n2.ns, n1.block, `${old} `), 'not via the old one');
  assert.ok(await until(() => routesVia(lab!, 'node1', n2.block, 'direct', n2.ip), 20_000, 250), `node1 routes ${n2.block} via ${n2.ip} again`);

  assert.ok(await until(() => lab!.ping('web-1', lab!.pod('web-2').ip, 1).received === 1 && lab!.ping('web-2', lab!.pod('web-1').ip, 1).received === 1, 10_000, 100), 'pods talk again');
  await assertPodPing(lab!, 'web-1', 'web-2', 3, 62);
  await assertPodPing(lab!, 'web-2', 'web-1', 3, 62);
  assert.is(n1.proc?.exitCode, null, 'the same podway all along');
  ok = true;
});

test.run();
