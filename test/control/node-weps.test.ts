/**
 * One node's WorkloadEndpoints among a cluster's (v3-store.ts listNodeWorkloadEndpoints, used by
 * the CNI plugin's host port check on each ADD): wep-name.ts mayBeOnNode tells another node's by
 * its name (the node field with '-' doubled) before any value is parsed; an endpoint named outside
 * that layout is still found by its text; a node whose name is the beginning of another's
 * ("node-1", "node-10", "node") is not mixed up with it; unreadable values are problems, not a throw.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FileKv } from '../../src/control/kv/file-kv';
import { listNodeWorkloadEndpoints } from '../../src/control/v3-store';
import { mayBeOnNode } from '../../src/control/wep-name';

const PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';
const wep = (node: string, pod: string, extra: Record<string, unknown> = {}) => JSON.stringify({
  apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint',
  metadata: { name: `${node.replace(/-/g, '--')}-k8s-${pod.replace(/-/g, '--')}-eth0`, namespace: 'default' },
  spec: { orchestrator: 'k8s', node, pod, endpoint: 'eth0', ipNetworks: ['10.0.0.1/32'], ...extra },
});
const keyOf = (node: string, pod: string) => `${PREFIX}default/${node.replace(/-/g, '--')}-k8s-${pod.replace(/-/g, '--')}-eth0`;

test('mayBeOnNode: by the name\'s node field; a node named as the beginning of another\'s not taken for it; by the text otherwise', () => {
  assert.ok(mayBeOnNode(keyOf('node-1', 'a'), '{}', 'node-1'));
  assert.not.ok(mayBeOnNode(keyOf('node-10', 'a'), wep('node-10', 'a'), 'node-1'), 'node-10 is not node-1');
  assert.not.ok(mayBeOnNode(keyOf('node-1', 'a'), wep('node-1', 'a'), 'node'), 'node-1 (node--1-...) is not node');
  assert.ok(mayBeOnNode(keyOf('node', 'a'), '{}', 'node'));
  assert.not.ok(mayBeOnNode(keyOf('node', 'a'), wep('node', 'a'), 'node-1'));
  // a name outside the layout: the value says
  assert.ok(mayBeOnNode(`${PREFIX}default/hand-made`, JSON.stringify({ spec: { node: 'node-1' } }), 'node-1'));
  assert.not.ok(mayBeOnNode(`${PREFIX}default/hand-made`, JSON.stringify({ spec: { node: 'node-10' } }), 'node-1'));
});

test('listNodeWorkloadEndpoints: this node\'s endpoints among 300 of others, a hand-named one included, spec.node checked, bad values as problems', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'podway-node-weps-'));
  const kv = new FileKv({ dir: path.join(dir, 'store') });
  try {
    for (let k = 0; k < 300; k++) await kv.create(keyOf(`node-${10 + (k % 7)}`, `p${k}`), wep(`node-${10 + (k % 7)}`, `p${k}`));
    await kv.create(keyOf('node-1', 'mine'), wep('node-1', 'mine', { ports: [{ name: '', protocol: 'tcp', port: 80, hostPort: 8080, hostIP: '' }] }));
    await kv.create(`${PREFIX}default/hand-made`, JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint', metadata: { name: 'hand-made', namespace: 'default' }, spec: { node: 'node-1' } }));
    // its name says node-1, its spec another node: not this node's
    await kv.create(keyOf('node-1', 'moved'), wep('node-12', 'moved'));
    await kv.create(keyOf('node-1', 'broken'), '{not json');
    const got = await listNodeWorkloadEndpoints(kv, 'node-1');
    assert.equal(got.items.map((r) => (r.object.metadata as { name: string }).name).sort(), ['hand-made', 'node--1-k8s-mine-eth0']);
    assert.equal(got.problems.length, 1);
    assert.match(got.problems[0], 'node--1-k8s-broken-eth0');
    assert.equal((await listNodeWorkloadEndpoints(kv, 'node-13')).items.length, 43);
  } finally {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
