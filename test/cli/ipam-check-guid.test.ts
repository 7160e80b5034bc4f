// `podway ipam check` on the node of a `podway run` whose etcd it reaches by another URL (the run's
// http://127.0.0.1:2379, the check's http://<node address>:2379: one etcd). The run is told to be
// on the datastore checked by the clusterGUID (ClusterInformation default) its status reports,
// compared with the store's, not by the URL text: the node's part (endpoints missing their
// interface, orphan pod interfaces) is checked. Before, it was "another datastore's": not checked,
// exit 0 "found 0 problems". A store with another clusterGUID is still another's, said with both
// GUIDs. etcd and podway run live in a network namespace of this test (etcd listening there
// only), the check in a private mount namespace with a tmpfs over /run/podway.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { writeFileSync } from 'node:fs';
import { BIN, ok, tempDir } from './cli-kit';
import { execBounded } from '../e2e/tools';
import { addNetns, tag } from '../helpers/netns';
import { ETCD_BINARY } from '../helpers/etcd';
import { singleMemberArgs } from '../../src/lab/etcd';

test('a run on the same etcd by another URL: its part checked (clusterGUID); a store with another clusterGUID: not', async () => {
  if (process.getuid?.() !== 0) throw new Error('needs root (a mount namespace, a network namespace)');
  const t = tag();
  const dir = tempDir('podway-guid-');
  const node = `calicoctl27-${t}`;
  const ns = `pw-guid-${t}`;
  const drop = addNetns(ns);
  try {
    for (const a of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.9.1/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up']]) {
      await execBounded('ip', ['-n', ns, ...a], 10_000);
    }
    writeFileSync(path.join(dir, 'pool.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.252.0.0/16}\n');
    // another store, with a clusterGUID of its own
    const other = `embedded:${path.join(dir, 'other')}`;
    writeFileSync(path.join(dir, 'ci.yaml'), `apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: {name: default}\nspec: {clusterGUID: ${'b'.repeat(32)}, datastoreReady: true}\n`);
    await ok(['apply', '-f', path.join(dir, 'pool.yaml'), '--datastore', other]);
    await ok(['apply', '-f', path.join(dir, 'ci.yaml'), '--datastore', other]);
    const node_ = JSON.stringify(process.execPath);
    const bin = JSON.stringify(BIN);
    const etcdArgs = singleMemberArgs(`guid-${t}`, path.join(dir, 'etcd'), 'http://0.0.0.0:2379', 'http://127.0.0.1:2379', 'http://127.0.0.1:2380').map((a) => JSON.stringify(a)).join(' ');
    const inNs = `ip netns exec ${ns}`;
    const check = (ds: string) => `${inNs} ${node_} ${bin} ipam check --datastore ${JSON.stringify(ds)} --node ${node} --grace-period 0; echo "exit=$?"`;
    const script = [
      'set -e',
      'mount -t tmpfs -o mode=0755 pw-guid-sockets /run/podway',
      'E=; P=',
      'trap \'for p in $P $E; do kill $p 2>/dev/null || true; done; for p in $P $E; do for i in $(seq 1 300); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; kill -9 $p 2>/dev/null || true; done\' EXIT',
      `${inNs} ${ETCD_BINARY} ${etcdArgs} 2>${JSON.stringify(path.join(dir, 'etcd.log'))} &`, 'E=$!',
      `for i in $(seq 1 200); do ${inNs} ${node_} ${bin} apply -f ${JSON.stringify(path.join(dir, 'pool.yaml'))} --datastore etcd:http://127.0.0.1:2379 >/dev/null 2>&1 && break; sleep 0.1; done`,
      `${inNs} ${node_} ${bin} run --node ${node} --ip 10.1.9.1/24 --datastore etcd:http://127.0.0.1:2379 --model-cache none --workers 1 2>${JSON.stringify(path.join(dir, 'run.log'))} &`, 'P=$!',
      `for i in $(seq 1 600); do ${node_} ${bin} status --node ${node} 2>/dev/null | grep -q clusterGUID && break; sleep 0.1; done`,
      'set +e',
      check('etcd:http://10.1.9.1:2379'),
      check(other),
    ].join('\n');
    const r = await execBounded('unshare', ['-m', 'sh', '-c', script], 180_000);
    assert.not.ok(r.timedOut, r.stderr);
    const [same, another] = r.stdout.split(/exit=\d+\n/);
    assert.match(r.stdout, /exit=0\n[^]*exit=5\n$/, r.stdout + r.stderr);
    assert.not.match(same, 'not checked', same);
    assert.match(same, 'Check complete; found 0 problems.', same);
    assert.match(another, new RegExp(`not checked: podway run on /run/podway/${node}\\.sock uses datastore etcd:http://127\\.0\\.0\\.1:2379 \\(clusterGUID [0-9a-f]{8}\\), not ${other.replace(/[.]/g, '\\.')} \\(clusterGUID bbbbbbbb\\)`), another);
  } finally {
    drop();
  }
});

test.run();
