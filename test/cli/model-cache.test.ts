// The model cache file (src/cli/model-cache.ts): a model written is read back whole (its Set
// included) with the boot and the Node it was written for; a cache of another node, datastore or
// format version (an older podway's: 1, 2, 3), damaged, cut short or of the wrong shape is refused
// with the reason, never thrown; writes leave no temporary file and are rate-bounded, the newest
// model winning.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { computeNodeModel, type NodeDataplaneModel } from '../../src/control';
import { parseClusterYaml } from '../../src/control/snapshot';
import { createHash } from 'node:crypto';
import { BOOT_ID_FILE, ModelCacheWriter, MODEL_CACHE_VERSION, currentBootId, datastoreIdentity, encodeModel, nodeIdentityOf, notCachedNode, notSameNode, notThisBoot, readModelCache, withChecksum, withdrawnModel, writeModelCache } from '../../src/cli/model-cache';
import { bgpInputsOf } from '../../src/control/bgp/cached-inputs';
import { until } from '../helpers/until';
import { NodeMetrics } from '../../src/observe/node-metrics';
import { PodwayMetrics } from '../../src/observe/metrics';
import { parseMetrics, valueOf } from '../observe/prom-text';
import { writeFormat3Cache } from '../helpers/model-cache-v3';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'podway-model-cache-'));
  dirs.push(d);
  return d;
};
test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const DS = 'etcd:http://10.0.0.9:2379';
/** The Node the caches here are of. */
const ID = { uid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427', createRevision: 17 };
const YAML = (pods: number) => [
  'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always}',
  'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\nspec: {bgp: {ipv4Address: 10.0.0.1/24}, ipv4VXLANTunnelAddr: 10.244.0.0}',
  'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n2}\nspec: {bgp: {ipv4Address: 10.0.0.2/24}, ipv4VXLANTunnelAddr: 10.244.1.0}',
  'apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: n1-10-244-0-0-26}\nspec: {node: n1, cidr: 10.244.0.0/26, state: confirmed}',
  'apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: n2-10-244-1-0-26}\nspec: {node: n2, cidr: 10.244.1.0/26, state: confirmed}',
  ...Array.from({ length: pods }, (_, i) => `apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: n1-k8s-p${i}-eth0, namespace: default}\nspec: {node: n1, orchestrator: k8s, endpoint: eth0, pod: p${i}, interfaceName: calip${i}, ipNetworks: [10.244.0.${i + 1}/32]}`),
].join('\n---\n');
const model = (pods: number): NodeDataplaneModel => computeNodeModel(parseClusterYaml(YAML(pods), 'test.yaml'), 'n1');

test('a written model is read back as it was (knownNodeIps a Set), with the time it was applied', async () => {
  const file = path.join(tempDir(), 'sub', 'n1.model.json');
  const m = model(2);
  const at = new Date('2026-01-02T03:04:05.000Z');
  await writeModelCache(file, 'n1', DS, m, at, ID);
  const r = readModelCache(file, 'n1', DS);
  if (r === 'none' || 'refused' in r) return assert.unreachable(`read back: ${JSON.stringify(r)}`);
  assert.equal(r.model, m);
  assert.ok(r.model.node.knownNodeIps instanceof Set);
  assert.is(r.model.node.knownNodeIps.size, 2);
  assert.is(r.appliedAt.toISOString(), at.toISOString());
  assert.equal(readdirSync(path.dirname(file)), ['n1.model.json'], 'no temporary file left');
});

test('a cache directory another user can write to (group-writable, or owned by another uid) is refused naming it and the fix: not written, not read; the default mode 0700 works', async () => {
  const d = path.join(tempDir(), 'made');
  const file = path.join(d, 'n1.model.json');
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID);
  assert.is(statSync(d).mode & 0o777, 0o700, 'made 0700 as /var/lib/podway is');
  assert.ok(!('refused' in (readModelCache(file, 'n1', DS) as object)));
  chmodSync(d, 0o770);
  const before = readFileSync(file, 'utf8');
  const err = await writeModelCache(file, 'n1', DS, model(2), new Date(), ID).then(() => null, (e: Error) => e);
  assert.match(String(err?.message), `model cache ${file}: its directory: ${d} is writable by group or others (mode 770): refused`);
  assert.match(String(err?.message), `chmod go-w ${d}`);
  assert.is(readFileSync(file, 'utf8'), before, 'not written');
  assert.equal(readModelCache(file, 'n1', DS), { refused: `its directory: ${d} is writable by group or others (mode 770): refused, another user could plant or replace the files podway keeps there (a symlink, a forged file); \`chmod go-w ${d}\` or use another directory` });
  chmodSync(d, 0o1777); // /tmp's mode: sticky does not help, anyone may create files in it
  assert.match(JSON.stringify(readModelCache(file, 'n1', DS)), 'mode 1777');
  chmodSync(d, 0o700);
  if (process.getuid?.() === 0) {
    chownSync(d, 65534, 65534);
    try {
      assert.match(JSON.stringify(readModelCache(file, 'n1', DS)), `${d} is owned by uid 65534, neither root nor this process's user (uid 0)`);
      const e2 = await writeModelCache(file, 'n1', DS, model(2), new Date(), ID).then(() => null, (e: Error) => e);
      assert.match(String(e2?.message), 'owned by uid 65534');
    } finally {
      chownSync(d, 0, 0);
    }
  }
  // A planted symlink at an old-style temporary name is never followed.
  const target = path.join(tempDir(), 'victim');
  writeFileSync(target, 'victim\n');
  symlinkSync(target, path.join(d, `.n1.model.json.${process.pid}.tmp`));
  await writeModelCache(file, 'n1', DS, model(2), new Date(), ID);
  assert.is(readFileSync(target, 'utf8'), 'victim\n');
  assert.ok(existsSync(file));
});

test('another node\'s, another datastore\'s, another version\'s or a damaged cache is refused, naming why; none is "none"', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'n1.model.json');
  assert.ok(readModelCache(file, 'n1', DS) === 'none');
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID);
  const refused = (node: string, ds: string) => {
    const r = readModelCache(file, node, ds);
    return r !== 'none' && 'refused' in r ? r.refused : `not refused: ${JSON.stringify(r).slice(0, 80)}`;
  };
  assert.match(refused('n2', DS), "it is node n1's, not n2's");
  assert.match(refused('n1', 'etcd:http://10.0.0.8:2379'), 'it is from datastore etcd:http://10.0.0.9:2379, not etcd:http://10.0.0.8:2379');
  const good = readFileSync(file, 'utf8');
  const c = JSON.parse(good) as Record<string, unknown> & { model: string };
  writeFileSync(file, JSON.stringify({ ...c, version: 99 }));
  assert.match(refused('n1', DS), 'format version 99, not this podway\'s (it reads formats 3 and 4 only)');
  writeFileSync(file, JSON.stringify({ ...c, model: c.model.replace('"endpoints"', '"endpointz"') }));
  assert.match(refused('n1', DS), 'its checksum does not match: damaged');
  writeFileSync(file, good.slice(0, good.length / 2));
  assert.match(refused('n1', DS), /^not JSON .*damaged or cut short$/);
  writeFileSync(file, '{"hello": 1}');
  assert.match(refused('n1', DS), 'not a podway model cache');
  writeFileSync(file, good);
  assert.match(refused('n1', DS), /^not refused/, 'the good file reads again');
});

const BGP_YAML = `${YAML(1)}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 10.0.0.254, asNumber: 65000, password: {secretKeyRef: {name: bgp, key: tor}}}`;

test('the BGP settings (checksummed with the model); without --bgp they are null, said', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const snap = parseClusterYaml(BGP_YAML, 'test.yaml');
  const inputs = bgpInputsOf(snap, 'n1');
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID, inputs);
  const r = readModelCache(file, 'n1', DS);
  if (r === 'none' || 'refused' in r) throw new Error(`not read: ${JSON.stringify(r)}`);
  assert.equal(r.bgp, JSON.parse(JSON.stringify(inputs)));
  assert.equal(r.bgp!.exports, [{ prefix: '10.244.0.0/26' }]);
  assert.equal(r.bgp!.peers, [{ name: 'tor', spec: { peerIP: '10.0.0.254', asNumber: 65000, password: { secretKeyRef: { name: 'bgp', key: 'tor' } } } }]);
  // the BGP part is covered by the checksum
  const c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & { bgp: string };
  writeFileSync(file, JSON.stringify({ ...c, bgp: c.bgp.replace('65000', '65001') }));
  const damaged = readModelCache(file, 'n1', DS);
  assert.equal(damaged, { refused: 'its checksum does not match: damaged' });
  // a BGP part of the wrong shape (checksum right: written so by something else) is named
  const bad = JSON.stringify({ nodes: 'x' });
  writeFileSync(file, JSON.stringify(withChecksum({ ...c, bgp: bad })));
  assert.equal(readModelCache(file, 'n1', DS), { refused: 'the BGP settings are malformed (bgp.nodes)' });
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID);
  const none = readModelCache(file, 'n1', DS);
  assert.ok(none !== 'none' && !('refused' in none) && none.bgp === null && none.noBgp === 'it was written without --bgp', JSON.stringify(none).slice(0, 200));
});

test('BGP settings with per-node BGPConfigurations (nodeConfigs) are format 4 still, read back whole; format 3 and 4 caches of the shape before them read as before', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const perNode = '\n---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n1}\nspec: {listenPort: 1181}\n---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n2}\nspec: {listenPort: 1182}';
  const inputs = bgpInputsOf(parseClusterYaml(`${BGP_YAML}${perNode}`, 'test.yaml'), 'n1');
  assert.equal(inputs.nodeConfigs, [{ name: 'node.n1', spec: { listenPort: 1181 } }, { name: 'node.n2', spec: { listenPort: 1182 } }]);
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID, inputs);
  assert.is((JSON.parse(readFileSync(file, 'utf8')) as { version: number }).version, MODEL_CACHE_VERSION);
  const r = readModelCache(file, 'n1', DS);
  if (r === 'none' || 'refused' in r) return assert.unreachable(`not read: ${JSON.stringify(r)}`);
  assert.equal(r.bgp, JSON.parse(JSON.stringify(inputs)));
  // The shape before them (no nodeConfigs), as the podway before wrote it: format 4 and format 3.
  const { nodeConfigs: _nc, ...before } = inputs;
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID, before);
  const r4 = readModelCache(file, 'n1', DS);
  assert.ok(r4 !== 'none' && !('refused' in r4) && r4.version === 4, JSON.stringify(r4).slice(0, 200));
  assert.equal((r4 as { bgp: unknown }).bgp, JSON.parse(JSON.stringify(before)));
  writeFormat3Cache(file, 'n1', DS, model(1), new Date(), before, currentBootId());
  const r3 = readModelCache(file, 'n1', DS);
  assert.ok(r3 !== 'none' && !('refused' in r3) && r3.version === 3, JSON.stringify(r3).slice(0, 200));
  assert.equal((r3 as { bgp: unknown }).bgp, JSON.parse(JSON.stringify(before)));
});

test('format 4 says the boot of the machine it was written in (this one\'s by default) and its Node; a bootId of the wrong type is refused', async () => {
  assert.is(MODEL_CACHE_VERSION, 4);
  const boot = readFileSync(BOOT_ID_FILE, 'utf8').trim();
  assert.match(boot, /^[0-9a-f-]{36}$/, 'the kernel\'s boot id');
  assert.is(currentBootId(), boot);
  const file = path.join(tempDir(), 'n1.model.json');
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID);
  const c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  assert.is(c.version, 4);
  assert.is(c.bootId, boot);
  assert.equal(c.nodeIdentity, ID);
  const r = readModelCache(file, 'n1', DS);
  assert.ok(r !== 'none' && !('refused' in r) && r.bootId === boot, JSON.stringify(r).slice(0, 200));
  assert.equal(r.nodeIdentity, ID);
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID, null, 'another-boot');
  const other = readModelCache(file, 'n1', DS);
  assert.ok(other !== 'none' && !('refused' in other) && other.bootId === 'another-boot');
  for (const bootId of [7, '', ['x']]) {
    writeFileSync(file, JSON.stringify(withChecksum({ ...c, bootId })));
    assert.equal(readModelCache(file, 'n1', DS), { refused: 'its bootId is not of the right type: damaged' }, JSON.stringify(bootId));
  }
  // the boot and the Node are checksummed with the rest
  writeFileSync(file, JSON.stringify({ ...c, bootId: '00000000-1111-2222-3333-444444444444' }));
  assert.equal(readModelCache(file, 'n1', DS), { refused: 'its checksum does not match: damaged' });
  writeFileSync(file, JSON.stringify({ ...c, nodeIdentity: { ...ID, createRevision: 18 } }));
  assert.equal(readModelCache(file, 'n1', DS), { refused: 'its checksum does not match: damaged' });
});

test('caches of an older podway: format 1 and 2 are refused, saying what they lack; format 3 (as a9affa6 wrote it, with or without its Node) is read, its Node null when it does not say', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const at = new Date('2026-01-02T03:04:05.000Z');
  await writeModelCache(file, 'n1', DS, model(2), at, ID);
  const c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & { model: string; bgp: string | null };
  const sha = (t: string) => createHash('sha256').update(t).digest('hex');
  // as those podways wrote them: 1 the model's checksum alone and no bgp; 2 model and bgp
  const v1: Record<string, unknown> = { ...c, version: 1, sha256: sha(c.model) };
  delete v1.bgp;
  delete v1.bootId;
  delete v1.nodeIdentity;
  const v2: Record<string, unknown> = { ...c, version: 2, sha256: sha(`${c.model}\n${c.bgp ?? 'null'}`) };
  delete v2.bootId;
  delete v2.nodeIdentity;
  for (const old of [v1, v2]) {
    writeFileSync(file, JSON.stringify(old));
    assert.equal(readModelCache(file, 'n1', DS), { refused: `format version ${old.version as number}, written by an older podway: it lacks what this one checks (the boot of the machine and the Node it was written for), and this podway reads formats 3 and 4 only` });
  }
  // 3, by that podway's own writer (test/helpers/model-cache-v3.ts): no Node
  const boot = currentBootId();
  writeFormat3Cache(file, 'n1', DS, model(2), at, null, boot);
  const v3text = readFileSync(file, 'utf8');
  assert.equal(Object.keys(JSON.parse(v3text) as object), ['format', 'version', 'node', 'datastore', 'appliedAt', 'bootId', 'sha256', 'model', 'bgp'], 'that podway\'s fields');
  const r3 = readModelCache(file, 'n1', DS);
  if (r3 === 'none' || 'refused' in r3) return assert.unreachable(`format 3 read: ${JSON.stringify(r3)}`);
  assert.equal(r3.model, model(2));
  assert.is(r3.version, 3);
  assert.is(r3.nodeIdentity, null, 'it does not say its Node');
  assert.is(r3.bootId, boot);
  assert.is(r3.appliedAt.toISOString(), at.toISOString());
  assert.is(r3.noBgp, 'it was written without --bgp');
  // 3 with the Node (written between b60dda9 and format 4: outside the checksum)
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(v3text) as object), nodeIdentity: ID }));
  const r3n = readModelCache(file, 'n1', DS);
  assert.ok(r3n !== 'none' && !('refused' in r3n) && r3n.version === 3, JSON.stringify(r3n).slice(0, 200));
  assert.equal((r3n as { nodeIdentity: unknown }).nodeIdentity, ID);
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(v3text) as object), nodeIdentity: { uid: 5 } }));
  assert.equal(readModelCache(file, 'n1', DS), { refused: 'its nodeIdentity is not a Node identity (uid, createRevision)' });
  // damaged: its checksum (the model's and BGP settings' texts) still checked
  writeFileSync(file, v3text.replace('\\"endpoints\\"', '\\"endpointz\\"'));
  assert.equal(readModelCache(file, 'n1', DS), { refused: 'its checksum does not match: damaged' });
  for (const v of [5, 0, '4', null, 3.5]) {
    writeFileSync(file, JSON.stringify({ ...c, version: v }));
    const r = readModelCache(file, 'n1', DS);
    assert.ok(r !== 'none' && 'refused' in r && r.refused.startsWith(`format version ${JSON.stringify(v)}, not this podway's`), JSON.stringify(r).slice(0, 200));
  }
  const noVersion: Record<string, unknown> = { ...c };
  delete noVersion.version;
  writeFileSync(file, JSON.stringify(noVersion));
  assert.equal(readModelCache(file, 'n1', DS), { refused: 'format version none, not this podway\'s (it reads formats 3 and 4 only)' });
});

test('a cache cut short at any length, or with a field of the wrong type (checksum right), is refused naming it, never thrown', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const inputs = bgpInputsOf(parseClusterYaml(BGP_YAML, 'test.yaml'), 'n1');
  await writeModelCache(file, 'n1', DS, model(2), new Date(), ID, inputs);
  const good = readFileSync(file, 'utf8');
  // cut short: 200 lengths spread over the file, and the last few bytes
  const lengths = new Set([...Array.from({ length: 200 }, (_, k) => Math.floor((k * good.length) / 200)), good.length - 1, good.length - 2]);
  for (const n of lengths) {
    writeFileSync(file, good.slice(0, n));
    const r = readModelCache(file, 'n1', DS);
    assert.ok(r !== 'none' && 'refused' in r, `cut at ${n}: ${JSON.stringify(r).slice(0, 120)}`);
  }
  const c = JSON.parse(good) as Record<string, unknown> & { model: string };
  const m = JSON.parse(c.model) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The model with `edit` done to a copy, written with a right checksum: refused naming `field`. */
  const wrong = (field: string, edit: (x: Record<string, any>) => void) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const x = JSON.parse(JSON.stringify(m)) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    edit(x);
    writeFileSync(file, JSON.stringify(withChecksum({ ...c, model: JSON.stringify(x) })));
    let r: ReturnType<typeof readModelCache>;
    try {
      r = readModelCache(file, 'n1', DS);
    } catch (e) {
      return assert.unreachable(`${field}: thrown: ${(e as Error).message}`);
    }
    assert.equal(r, { refused: `the model is malformed (${field})` }, field);
  };
  wrong('model.node', (x) => { for (const k of Object.keys(x)) delete x[k]; Object.assign(x, { node: 1 }); });
  wrong('model.node.ip', (x) => { x.node.ip = '10.0.0.1'; });
  wrong('model.node.knownNodeIps', (x) => { x.node.knownNodeIps = [1, 2]; });
  wrong('model.node.knownNodeIps', (x) => { x.node.knownNodeIps = { $set: ['10.0.0.1'] }; });
  wrong('model.node.vtepMac', (x) => { x.node.vtepMac = 5; });
  wrong('model.node.subnet', (x) => { x.node.subnet = '10.0.0.0/24'; });
  wrong('model.endpoints', (x) => { x.endpoints = {}; });
  wrong('model.endpoints[1].ips', (x) => { x.endpoints[1].ips = ['10.244.0.2']; });
  wrong('model.endpoints[0].interfaceName', (x) => { delete x.endpoints[0].interfaceName; });
  wrong('model.endpoints[0]', (x) => { x.endpoints[0] = null; });
  wrong('model.routes[0].addr', (x) => { x.routes[0].addr = -1; });
  wrong('model.routes[0].kind', (x) => { x.routes[0].kind = 'teleport'; });
  wrong('model.routes[0].prefixLen', (x) => { x.routes[0].prefixLen = 33; });
  wrong('model.pools[0].natOutgoing', (x) => { x.pools[0].natOutgoing = 'yes'; });
  wrong('model.mtu.pod', (x) => { x.mtu.pod = '1450'; });
  wrong('model.encap.vxlan', (x) => { x.encap.vxlan = 1; });
  wrong('model.v6', (x) => { x.v6 = null; });
  wrong('model.v6.knownNodeIps6', (x) => { x.v6.knownNodeIps6 = 'fd00::1'; });
  wrong('model.v6.routes[0].w', (x) => { x.v6.routes = [{ cidr: 'fd00::/64', w: [0, 0, 0], prefixLen: 64 }]; });
  wrong('model.bgpLearned[0].nextHop', (x) => { x.bgpLearned = [{ prefix: '0.0.0.0/0', nextHop: null, peer: 'p' }]; });
  // values the engine refuses (a MAC's text) are refused here too, not at its apply
  writeFileSync(file, JSON.stringify(withChecksum({ ...c, model: JSON.stringify({ ...m, endpoints: [{ ...m.endpoints[0], mac: 'zz:zz' }] }) })));
  const mac = readModelCache(file, 'n1', DS);
  assert.ok(mac !== 'none' && 'refused' in mac && mac.refused.startsWith('the engine would refuse its model (endpoint '), JSON.stringify(mac));
  // the outer fields
  for (const [k, v, why] of [['model', 5, 'its model is not of the right type: damaged'], ['bgp', 7, 'its bgp is not of the right type: damaged'], ['appliedAt', 0, 'its appliedAt is not of the right type: damaged'], ['appliedAt', 'yesterday', 'no valid appliedAt time'], ['nodeIdentity', null, 'its nodeIdentity is not a Node identity (uid, createRevision)'], ['sha256', null, 'its sha256 is not of the right type: damaged'], ['model', '{"node":', 'its model is not JSON'], ['model', '[1]', 'the model is malformed (model)']] as const) {
    writeFileSync(file, JSON.stringify(k === 'sha256' || (k === 'nodeIdentity') ? { ...c, [k]: v } : withChecksum({ ...c, [k]: v })));
    const r = readModelCache(file, 'n1', DS);
    assert.ok(r !== 'none' && 'refused' in r && r.refused.startsWith(why), `${k}=${JSON.stringify(v)}: ${JSON.stringify(r).slice(0, 200)}`);
  }
  for (const top of ['[]', 'null', '7', '"x"']) {
    writeFileSync(file, top);
    assert.equal(readModelCache(file, 'n1', DS), { refused: 'not a podway model cache' }, top);
  }
  writeFileSync(file, good);
  const back = readModelCache(file, 'n1', DS);
  assert.ok(back !== 'none' && !('refused' in back) && back.model.endpoints.length === 2, 'the good file reads');
  assert.is(encodeModel(back.model), c.model, 'read back as written');
});

test('the Node a cache is of: the writer writes once the registration said it, and not before (said once)', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const logs: string[] = [];
  const w = new ModelCacheWriter(file, 'n1', DS, { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) }, 0);
  w.applied(model(1));
  w.applied(model(1));
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(readModelCache(file, 'n1', DS) === 'none', 'not written without its Node');
  assert.equal(logs.filter((l) => l.startsWith('WARN')).length, 1, logs.join(' | '));
  assert.match(logs[0]!, /a model applied before the registration said which Node it is of: not written/);
  const entry = { key: '/calico/resources/v3/projectcalico.org/nodes/n1', value: JSON.stringify({ kind: 'Node', metadata: { name: 'n1', uid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427' }, spec: {} }), createRevision: 17, modRevision: 40 };
  w.node(nodeIdentityOf(entry));
  w.applied(model(2));
  await w.stop();
  const r = readModelCache(file, 'n1', DS);
  assert.ok(r !== 'none' && !('refused' in r), JSON.stringify(r).slice(0, 200));
  assert.equal(r.nodeIdentity, { uid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427', createRevision: 17 });
  assert.is(r.model.endpoints.length, 2);
  const c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const bad of [{ uid: 7, createRevision: 17 }, { uid: 'x', createRevision: 0 }, { uid: '', createRevision: 3 }, { uid: 'x', createRevision: '3' }, 'n1']) {
    writeFileSync(file, JSON.stringify({ ...c, nodeIdentity: bad }));
    assert.equal(readModelCache(file, 'n1', DS), { refused: 'its nodeIdentity is not a Node identity (uid, createRevision)' }, JSON.stringify(bad));
  }
});

test('notSameNode: the same Node is null; deleted, another uid or another creation revision say why', () => {
  const value = (uid?: string) => JSON.stringify({ kind: 'Node', metadata: { name: 'n1', ...(uid ? { uid } : {}) }, spec: {} });
  const entry = (uid: string | undefined, createRevision: number) => ({ key: 'k', value: value(uid), createRevision, modRevision: createRevision + 5 });
  const cached = { uid: 'aaaa-1', createRevision: 17 };
  assert.is(notSameNode('n1', cached, entry('aaaa-1', 17)), null);
  assert.is(notSameNode('n1', cached, null), 'its Node n1 (uid aaaa-1, created at revision 17) is not in the datastore any more (deleted)');
  assert.is(notSameNode('n1', cached, entry('bbbb-2', 90)), 'its Node n1 (uid aaaa-1, created at revision 17) is not the datastore\'s Node n1 (uid bbbb-2, created at revision 90): deleted and registered again');
  assert.match(notSameNode('n1', cached, entry('aaaa-1', 90)) ?? '', 'deleted and registered again', 'the same uid put back in a new key');
  assert.match(notSameNode('n1', cached, entry(undefined, 17)) ?? '', 'uid (none)', 'the uid gone');
  assert.is(notSameNode('n1', { uid: null, createRevision: 17 }, entry(undefined, 17)), null, 'recorded without a uid: the revision decides');
  assert.equal(nodeIdentityOf({ key: 'k', value: 'not json', createRevision: 3, modRevision: 3 }), { uid: null, createRevision: 3 });
});

test('notCachedNode: a format 3 cache without its Node takes the datastore\'s Node for its own only if created a second or more before its model was applied; with an identity, notSameNode', () => {
  const entry = (created: string | undefined, createRevision = 40) => ({ key: 'k', value: JSON.stringify({ kind: 'Node', metadata: { name: 'n1', uid: 'u-1', ...(created ? { creationTimestamp: created } : {}) }, spec: {} }), createRevision, modRevision: createRevision });
  const v3 = { nodeIdentity: null, appliedAt: new Date('2026-12-06T17:00:10.500Z') };
  assert.is(notCachedNode('n1', v3, entry('2026-12-06T16:00:00Z')), null, 'created an hour before');
  assert.is(notCachedNode('n1', v3, entry('2026-12-06T17:00:09Z')), null, 'created in the second before the one of the apply');
  assert.match(notCachedNode('n1', v3, entry('2026-12-06T17:00:10Z')) ?? '', 'was created at 2026-12-06T17:00:10Z, not before its model was applied (2026-12-06T17:00:10.500Z): deleted and registered again, or too close to tell', 'the same second: cannot tell');
  assert.match(notCachedNode('n1', v3, entry('2026-12-06T18:00:00Z')) ?? '', 'deleted and registered again', 'created after: another Node');
  assert.is(notCachedNode('n1', v3, null), 'its Node n1 is not in the datastore any more (deleted)');
  assert.match(notCachedNode('n1', v3, entry(undefined)) ?? '', 'says no creationTimestamp to tell (uid u-1, created at revision 40)');
  assert.match(notCachedNode('n1', v3, entry('yesterday')) ?? '', 'says no creationTimestamp to tell');
  // a cache that records its Node: the identity decides, not the times
  const v4 = { nodeIdentity: { uid: 'u-1', createRevision: 40 }, appliedAt: v3.appliedAt };
  assert.is(notCachedNode('n1', v4, entry('2026-12-06T18:00:00Z')), null);
  assert.match(notCachedNode('n1', v4, entry('2026-12-06T16:00:00Z', 41)) ?? '', 'deleted and registered again');
});

test('withdrawnModel: no endpoints, routes or tunnel addresses (IPv4 and IPv6); the node address, pools and MTUs kept', () => {
  const m = model(2);
  assert.ok(m.endpoints.length === 2 && m.routes.length > 0 && m.node.vtepIp !== null, 'the model has endpoints, routes and a VTEP');
  const w = withdrawnModel(m);
  assert.equal([w.endpoints, w.routes, w.withheld, w.v6.endpoints, w.v6.routes, w.v6.withheld], [[], [], [], [], [], []]);
  assert.is(w.node.vtepIp, null);
  assert.is(w.node.ipipTunnelIp, null);
  assert.is(w.v6.vtepIp6, null);
  assert.is(w.node.ip, m.node.ip);
  assert.equal(w.pools, m.pools);
  assert.equal(w.mtu, m.mtu);
  assert.is(m.endpoints.length, 2, 'the cached model itself untouched');
});

// Whether a cache's forwarding state is still there (run.ts: applied at once, and with --bgp the
// speaker's graceful-restart claim, R and F, which a cache of another boot must not make).
test('notThisBoot: null for a cache of this boot; another boot, none said or this boot unreadable say why', async () => {
  const boot = currentBootId()!;
  assert.is(notThisBoot(boot), null);
  assert.is(notThisBoot('00000000-1111-2222-3333-444444444444', boot), `it was written in another boot of the machine (boot id 00000000-1111-2222-3333-444444444444, this one ${boot})`);
  assert.is(notThisBoot(null, boot), 'it does not say which boot of the machine it was written in (the podway that wrote it could not read its boot id)');
  assert.is(notThisBoot(boot, null), `this boot's id cannot be read (${BOOT_ID_FILE})`);
  // As read back from the file: written by default with this boot's id, or another's given.
  const file = path.join(tempDir(), 'n1.model.json');
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID);
  const r = readModelCache(file, 'n1', DS);
  assert.ok(r !== 'none' && !('refused' in r) && notThisBoot(r.bootId) === null);
  await writeModelCache(file, 'n1', DS, model(1), new Date(), ID, null, 'another-boot');
  const o = readModelCache(file, 'n1', DS);
  assert.ok(o !== 'none' && !('refused' in o) && notThisBoot(o.bootId)?.startsWith('it was written in another boot of the machine (boot id another-boot'));
});

test('the writer writes the BGP settings with the model, and again when only they change', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const w = new ModelCacheWriter(file, 'n1', DS, { info: () => undefined, warn: () => undefined }, 0);
  w.node(ID);
  const snap = parseClusterYaml(BGP_YAML, 'test.yaml');
  const inputs = bgpInputsOf(snap, 'n1');
  const peersOnDisk = () => {
    const r = readModelCache(file, 'n1', DS);
    return r !== 'none' && !('refused' in r) ? r.bgp?.peers.length ?? -1 : -2;
  };
  w.applied(model(1), new Date(), inputs);
  assert.ok(await until(() => peersOnDisk() === 1), 'written with the model');
  w.bgp({ ...inputs, peers: [] });
  assert.ok(await until(() => peersOnDisk() === 0), 'written again with the new settings');
  await w.stop();
  const r = readModelCache(file, 'n1', DS);
  assert.ok(r !== 'none' && !('refused' in r) && r.model.endpoints.length === 1, 'the same model');
});

test('a model with new BGP settings is written with them in one write: never the previous model with the new settings', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const w = new ModelCacheWriter(file, 'n1', DS, { info: () => undefined, warn: () => undefined }, 1000);
  w.node(ID);
  const inputs = bgpInputsOf(parseClusterYaml(BGP_YAML, 'test.yaml'), 'n1');
  const onDisk = () => {
    const r = readModelCache(file, 'n1', DS);
    return r !== 'none' && !('refused' in r) ? `${r.model.endpoints.length} endpoints, ${r.bgp?.peers.length ?? -1} peers` : 'none';
  };
  try {
    w.applied(model(1), new Date(), inputs);
    assert.ok(await until(() => onDisk() === '1 endpoints, 1 peers'), onDisk());
    // the interval is up: the next model is written at once (the bug: its settings went first,
    // written at once with the model before, which stayed on disk for an interval)
    await new Promise((r) => setTimeout(r, 1200));
    w.applied(model(2), new Date(), { ...inputs, peers: [] });
    const seen = new Set<string>();
    await until(() => { seen.add(onDisk()); return onDisk() === '2 endpoints, 0 peers'; });
    seen.delete('1 endpoints, 1 peers'); // read before the write landed
    assert.equal([...seen], ['2 endpoints, 0 peers'], 'on disk, in turn');
    // settings alone (the model as it was): the last model again, with them; a model without
    // settings of its own keeps those in force
    w.bgp(inputs);
    w.applied(model(3));
    await w.stop();
    assert.is(onDisk(), '3 endpoints, 1 peers');
  } finally {
    await w.stop();
  }
});


test('writes are rate-bounded: the first at once, the newest of the rest on stop (or when the interval is up)', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const logs: string[] = [];
  const w = new ModelCacheWriter(file, 'n1', DS, { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) }, 3_600_000);
  w.node(ID);
  const endpoints = () => {
    const r = readModelCache(file, 'n1', DS);
    return r !== 'none' && !('refused' in r) ? r.model.endpoints.length : -1;
  };
  w.applied(model(1));
  assert.ok(await until(() => endpoints() === 1), 'the first model is written at once');
  w.applied(model(2));
  w.applied(model(3));
  await new Promise((r) => setTimeout(r, 100));
  assert.is(endpoints(), 1, 'later ones wait for the interval');
  await w.stop();
  assert.is(endpoints(), 3, 'stop writes the newest');
  assert.equal(readdirSync(path.dirname(file)), ['n1.model.json'], 'no temporary file left');
  assert.is(logs.length, 1, logs.join(' | '));
  assert.match(logs[0]!, 'written');
});

test('stop() waits for every write: a model applied during a write longer than the interval is written before stop returns, by one writer', async () => {
  const file = path.join(tempDir(), 'n1.model.json');
  const logs: string[] = [];
  // Interval 0: every write outlasts it, so the end of a write finds the next one due at once.
  const w = new ModelCacheWriter(file, 'n1', DS, { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) }, 0);
  w.node(ID);
  w.applied(model(1)); // written at once (off the thread)
  w.applied(model(2)); // pending behind it
  await w.stop();
  const r = readModelCache(file, 'n1', DS);
  assert.ok(r !== 'none' && !('refused' in r) && r.model.endpoints.length === 2, `the newest model is on disk when stop returns: ${JSON.stringify(r).slice(0, 120)}`);
  // Nothing starts after stop: later models are not written and no temporary file appears.
  w.applied(model(3));
  w.flush();
  await new Promise((r) => setTimeout(r, 200));
  const again = readModelCache(file, 'n1', DS);
  assert.ok(again !== 'none' && !('refused' in again) && again.model.endpoints.length === 2, 'no write after stop');
  assert.equal(readdirSync(path.dirname(file)), ['n1.model.json'], 'no temporary file left');
  assert.ok(!logs.some((l) => l.startsWith('WARN')), logs.join(' | '));
});

test('a cache that cannot be written is said once (forwarding goes on)', async () => {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'file'), 'x');
  const logs: string[] = [];
  const w = new ModelCacheWriter(path.join(dir, 'file', 'n1.model.json'), 'n1', DS, { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) }, 0);
  w.node(ID);
  w.applied(model(1));
  assert.ok(await until(() => logs.length > 0), 'the failure is said');
  w.applied(model(1));
  await w.stop();
  assert.is(logs.length, 1, logs.join(' | '));
  assert.match(logs[0]!, /^WARN model cache .*: cannot write it/);
});

test('a cache on a full file system (a small tmpfs): status and the metrics say it is failing while it lasts, not only the one warning', async () => {
  const dir = tempDir();
  const mnt = path.join(dir, 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', `opsfix2-${process.pid}`, mnt]);
  try {
    const logs: string[] = [];
    const file = path.join(mnt, 'n1.model.json');
    const w = new ModelCacheWriter(file, 'n1', DS, { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) }, 0);
    const nm = new NodeMetrics({ model: () => null, ready: () => true, datastoreInSync: () => true, workers: () => 1, modelCacheWrites: () => w.status() });
    const metrics = new PodwayMetrics({ processMetrics: false });
    metrics.add(nm);
    const scrape = async () => { const m = parseMetrics(await metrics.scrape()); return [valueOf(m, 'podway_model_cache_write_failing'), valueOf(m, 'podway_model_cache_write_failures_total')]; };
    w.node(ID);
    w.applied(model(1));
    assert.ok(await until(() => w.status().lastWritten !== null, 5000), `written: ${logs.join(' | ')}`);
    assert.equal(await scrape(), [0, 0]);
    // the file system full: the next writes fail (ENOSPC), said once, counted, and failing says since when
    let filler = 0;
    try {
      for (; filler < 64; filler++) writeFileSync(path.join(mnt, `fill${filler}`), Buffer.alloc(4096));
    } catch (e) {
      assert.is((e as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    w.applied(model(2));
    assert.ok(await until(() => w.status().failing !== null, 5000), `failing: ${JSON.stringify(w.status())}`);
    w.applied(model(3));
    assert.ok(await until(() => w.status().failures === 2, 5000), `two failures: ${JSON.stringify(w.status())}`);
    const st = w.status();
    assert.is(st.file, file);
    assert.is(st.failing!.attempts, 2);
    assert.match(st.failing!.error, /ENOSPC/);
    assert.ok(Date.parse(st.failing!.since) <= Date.now());
    assert.equal(await scrape(), [1, 2]);
    assert.is(logs.filter((l) => l.startsWith('WARN')).length, 1, logs.join(' | '));
    // room again: written, failing cleared, the failures counted on
    for (let k = 0; k < filler; k++) rmSync(path.join(mnt, `fill${k}`), { force: true });
    w.applied(model(4));
    assert.ok(await until(() => w.status().failing === null, 5000), `written again: ${JSON.stringify(w.status())}`);
    assert.equal(await scrape(), [0, 2]);
    assert.ok(logs.some((l) => /written again/.test(l)), logs.join(' | '));
    await w.stop();
    const r = readModelCache(file, 'n1', DS);
    assert.ok(r !== 'none' && !('refused' in r) && r.model.endpoints.length === 4, 'the newest model on disk');
  } finally {
    execFileSync('umount', [mnt]);
  }
});

test('the datastore identity: etcd endpoints, sorted; none for local datastores', () => {
  assert.is(datastoreIdentity({ kind: 'etcd', endpoints: ['http://b:2379/', 'http://a:2379'] }), 'etcd:http://a:2379,http://b:2379');
  assert.is(datastoreIdentity({ kind: 'embedded', dir: '/x' }), null);
  assert.is(datastoreIdentity({ kind: 'file', path: '/x' }), null);
});

test.run();
