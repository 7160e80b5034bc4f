/**
 * The CNI plugin and IPPool spec.namespaceSelector (Calico v3.31+), root and network namespaces:
 * an ADD that names no pool gets its address only from pools whose namespaceSelector matches the
 * pod's namespace. Without the Kubernetes API podway knows one label of it, the one every
 * namespace carries (kubernetes.io/metadata.name = its name); a pod of no namespace (no
 * K8S_POD_NAMESPACE) matches as libcalico-go matches without one: against no labels.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniHarness } from './harness';
import { applyResource } from '../../src/control/v3-store';
import { isRoot } from '../helpers/netns';

if (!isRoot()) throw new Error('the CNI plugin tests need root (network namespaces)');

const cid = (n: string): string => `c${n}${Math.random().toString(16).slice(2, 10)}`;
const pool = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec });

test('ADD: a pool whose namespaceSelector names namespace web gives to web pods only', async () => {
  const h = new CniHarness();
  try {
    await h.setup({ cidr: '10.251.0.0/24', blockSize: 26 }); // every namespace
    // sorts before the harness's pool-<tag>, so it is tried first wherever it applies
    await applyResource(h.kv, pool(`a-web-${h.tag}`, { cidr: '10.254.0.0/24', blockSize: 26, namespaceSelector: "kubernetes.io/metadata.name == 'web'" }));
    const web = await h.add(h.pod('w'), cid('w'), { args: 'K8S_POD_NAMESPACE=web;K8S_POD_NAME=w' });
    assert.is(web.exitCode, 0, web.stdout + web.stderr);
    assert.match(web.json.ips[0].address, /^10\.254\.0\.\d+\/32$/);
    const other = await h.add(h.pod('o'), cid('o'), { args: 'K8S_POD_NAMESPACE=db;K8S_POD_NAME=o' });
    assert.is(other.exitCode, 0, other.stdout + other.stderr);
    assert.match(other.json.ips[0].address, /^10\.251\.0\.\d+\/32$/);
    const plain = await h.add(h.pod('p'), cid('p'));
    assert.is(plain.exitCode, 0, plain.stdout + plain.stderr);
    assert.match(plain.json.ips[0].address, /^10\.251\.0\.\d+\/32$/);
  } finally {
    await h.cleanup();
  }
});

test.run();
