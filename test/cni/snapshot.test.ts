/**
 * The plugin's start-up snapshot (src/cni/snapshot.ts, snapshot-entry.ts): `cni install` builds it
 * for the node it writes into the shim, and calls start from it, compiling no module of their own
 * (PODWAY_CNI_SNAPSHOT_REPORT=1 has the process say what it compiled); the snapshot holds zod and
 * the plugin but not the etcd3 client; a file of the build changed since makes the calls run the
 * plugin from dist/ as before (and say so); no snapshot for the node binary (another node, the blob
 * gone), NODE_OPTIONS or arguments: the shim runs dist/src/cni/main.js. Root and network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { withHarness, PluginRun } from './harness';
import { readManifest, snapshotBlob } from '../../src/cni/snapshot';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string): string => `s${n}${Math.random().toString(16).slice(2, 10)}`;
const REPORT = { PODWAY_CNI_SNAPSHOT_REPORT: '1' };
const LINE = 'podway-cni-snapshot: ';

/** What a process started from the snapshot said it held and compiled (null: not started from one). */
function snapshotReport(r: PluginRun): { mode: string; snapshot: string[]; compiled: string[] } | null {
  const line = r.stderr.split('\n').find((l) => l.startsWith(LINE));
  return line ? JSON.parse(line.slice(LINE.length)) : null;
}

const packageOf = (file: string): string | null => {
  const i = file.lastIndexOf('/node_modules/');
  if (i < 0) return null;
  const parts = file.slice(i + '/node_modules/'.length).split('/');
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
};

test('ADD, CHECK and DEL start from the snapshot cni install built: nothing compiled at run time but main.js; no etcd3 client in it', async () => {
  await withHarness(async (h) => {
    const blob = snapshotBlob(process.execPath);
    assert.ok(readFileSync(path.join(h.binDir, 'podway'), 'utf8').includes('--snapshot-blob'), 'the shim uses a snapshot');
    const manifest = readManifest(blob.replace(/\.blob$/, '.json'));
    assert.ok(manifest, `the snapshot's manifest beside ${blob}`);
    const packages = new Set(manifest!.files.map(([f]) => packageOf(f)).filter((p): p is string => p !== null));
    assert.ok(packages.has('zod'), 'zod is in the snapshot');
    for (const heavy of ['etcd3', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'cockatiel', 'pino', 'commander', 'yaml']) assert.not.ok(packages.has(heavy), `the snapshot holds ${heavy}`);
    assert.ok(manifest!.files.some(([f]) => f.endsWith('/dist/src/cni/plugin.js')), 'the plugin is in it');

    const pod = h.pod('snap');
    const id = cid('a');
    const mainOnly = (r: PluginRun, what: string) => {
      assert.is(r.exitCode, 0, `${what}: ${r.stdout} ${r.stderr}`);
      const rep = snapshotReport(r);
      assert.ok(rep, `${what} started from the snapshot (stderr: ${r.stderr})`);
      assert.is(rep!.mode, 'snapshot', what);
      // (the flock addon, a .node file, is loaded at run time: a snapshot holds no native code)
      assert.equal(rep!.compiled.filter((f) => !f.endsWith('.node')).map((f) => path.basename(f)), ['main.js'], `${what} compiled only main.js`);
    };
    const add = await h.call({ command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', env: REPORT });
    mainOnly(add, 'ADD');
    assert.match(add.json.ips[0].address, /^10\.251\.0\./);
    assert.is((await h.workloadEndpoints()).length, 1, 'its WorkloadEndpoint written');
    const check = await h.call({ command: 'CHECK', containerId: id, netns: pod.path, ifname: 'eth0', config: h.config('1.1.0', { prevResult: add.json }), env: REPORT });
    mainOnly(check, 'CHECK');
    const del = await h.call({ command: 'DEL', containerId: id, netns: pod.path, ifname: 'eth0', env: REPORT });
    mainOnly(del, 'DEL');
    assert.equal(await h.workloadEndpoints(), [], 'DEL removed the endpoint');
    assert.equal(await h.handles(), [], 'DEL released the address');
    assert.equal(h.caliLinks(), [], 'and the veth');

    // NODE_OPTIONS (a V8 flag there would make node refuse the snapshot): main.js, as before
    const plain = await h.call({ command: 'VERSION', env: { ...REPORT, NODE_OPTIONS: '--no-warnings' } });
    assert.is(plain.exitCode, 0, plain.stderr);
    assert.is(snapshotReport(plain), null, 'NODE_OPTIONS set: not started from the snapshot');
  });
});

test('a build changed under the snapshot: calls run dist/ as it is now and say so; install builds it again; a node without one runs main.js', async () => {
  // A copy of this build (dist/src, build/Release, node_modules), so its files can be touched.
  const tmp = mkdtempSync(path.join(tmpdir(), 'podway-snapshot-'));
  try {
    cpSync(path.resolve(__dirname, '../../src'), path.join(tmp, 'dist', 'src'), { recursive: true });
    mkdirSync(path.join(tmp, 'build'));
    cpSync(path.resolve(__dirname, '../../../build/Release'), path.join(tmp, 'build', 'Release'), { recursive: true });
    symlinkSync(path.resolve(__dirname, '../../../node_modules'), path.join(tmp, 'node_modules'));
    await withHarness(async (h) => {
      const install = () => {
        const script = `const d = require(${JSON.stringify(path.join(tmp, 'dist/src/cni/install.js'))}).installCni({ binDir: ${JSON.stringify(h.binDir)}, confDir: ${JSON.stringify(h.confDir)}, datastore: 'embedded:${h.storeDir}', node: ${JSON.stringify(h.nodeName)}, control: ${JSON.stringify(h.control)}, ipamLockFile: ${JSON.stringify(h.ipamLockFile)}, pendingDelDir: ${JSON.stringify(h.pendingDelDir)}, env: {} }); console.log(JSON.stringify(d));`;
        const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 300_000 });
        assert.is(r.status, 0, `${r.stdout}${r.stderr}`);
        return JSON.parse(r.stdout) as { snapshot: string | null; note: string | null };
      };
      const done = install();
      assert.ok(done.snapshot && done.snapshot.startsWith(path.join(tmp, 'build', 'cni-snapshot')), `the copy's snapshot: ${JSON.stringify(done)}`);
      // named after its build too: two checkouts sharing one build/ (a link) never take each other's
      assert.is.not(path.basename(done.snapshot!), path.basename(snapshotBlob(process.execPath)));
      const pod = h.pod('stale');
      const first = await h.call({ command: 'ADD', containerId: cid('b'), netns: pod.path, ifname: 'eth0', env: REPORT });
      assert.is(first.exitCode, 0, first.stderr);
      assert.is(snapshotReport(first)?.mode, 'snapshot');

      // a file of the build changed since (an upgrade's tsc): the plugin as it is on disk now
      const plugin = path.join(tmp, 'dist', 'src', 'cni', 'plugin.js');
      const later = new Date(Date.now() + 5000);
      utimesSync(plugin, later, later);
      const id = cid('c');
      const pod2 = h.pod('stale2');
      const stale = await h.call({ command: 'ADD', containerId: id, netns: pod2.path, ifname: 'eth0', env: REPORT });
      assert.is(stale.exitCode, 0, `${stale.stdout} ${stale.stderr}`);
      assert.is(snapshotReport(stale)?.mode, 'stale');
      assert.match(stale.stderr, `podway: CNI plugin snapshot not used: ${plugin} changed since the snapshot was built`);
      assert.is((await h.workloadEndpoints()).length, 2);

      // install again: a new snapshot of the build as it is
      const again = install();
      assert.is(again.snapshot, done.snapshot);
      const del = await h.call({ command: 'DEL', containerId: id, netns: pod2.path, ifname: 'eth0', env: REPORT });
      assert.is(del.exitCode, 0, del.stderr);
      assert.is(snapshotReport(del)?.mode, 'snapshot', 'rebuilt for the changed file');

      // no blob for this node binary (a node upgraded in place is another inode): main.js
      renameSync(done.snapshot!, `${done.snapshot}.away`);
      const none = await h.call({ command: 'VERSION', env: REPORT });
      assert.is(none.exitCode, 0, none.stderr);
      assert.is(snapshotReport(none), null, 'no blob: not started from one');
      assert.equal(none.json.supportedVersions, ['0.4.0', '1.0.0', '1.1.0']);
      assert.ok(readdirSync(path.join(tmp, 'build', 'cni-snapshot')).every((f) => !f.includes('.blob.') || f.endsWith('.away')), 'no temporary file left');
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
