// The model thread passes the datastore's warnings on (podway run logs them as warnings): a
// WorkloadEndpoint left out because another holds its address used to vanish without a word.
// An embedded store in a temp dir; the node's address is loopback's, so no namespace is needed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ModelSource } from '../../src/cli/model-source';
import { ok, tempDir } from './cli-kit';

const t = suite('model source warnings');

const wep = (pod: string, iface: string, ip: string, node = 'n1') =>
  `apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: ${node}-k8s-${pod}-eth0}\nspec: {node: ${node}, orchestrator: k8s, pod: ${pod}, endpoint: eth0, interfaceName: ${iface}, ipNetworks: [${ip}/32]}\n`;

t('an endpoint left out (its address taken) is warned about once, not again on every change', async () => {
  const store = `embedded:${tempDir()}`;
  const work = tempDir();
  const apply = async (name: string, text: string) => {
    writeFileSync(path.join(work, name), text);
    await ok(['apply', '-f', path.join(work, name), '--datastore', store]);
  };
  await apply('base.yaml', [
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16}\n',
    'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\nspec: {bgp: {ipv4Address: 127.0.0.1/8}}\n',
    wep('first', 'cali1', '10.244.0.5'),
  ].join('---\n'));
  // Written later, so the older endpoint keeps the address.
  await apply('second.yaml', wep('second', 'cali2', '10.244.0.5'));
  const warnings: string[] = [];
  const { source, first } = await ModelSource.start(store, 'n1', () => undefined, { onWarning: (m) => warnings.push(m) });
  try {
    assert.equal(first.endpoints.map((e) => e.interfaceName), ['cali1'], 'the older endpoint keeps the address');
    const leftOut = /WorkloadEndpoint default\/n1-k8s-second-eth0 left out: 10\.244\.0\.5\/32 on node n1 belongs to WorkloadEndpoint default\/n1-k8s-first-eth0/;
    assert.ok(warnings.some((w) => leftOut.test(w)), `warned: ${JSON.stringify(warnings)}`);
    // Another change: the same warning is not repeated.
    const seen = new Promise<void>((resolve) => source.onMessage((m) => { if (m.type === 'model' || m.type === 'unchanged') resolve(); }));
    await apply('third.yaml', wep('third', 'cali3', '10.244.0.6'));
    await seen;
    assert.is(warnings.filter((w) => leftOut.test(w)).length, 1, JSON.stringify(warnings));
  } finally {
    await source.close();
  }
});

t.run();
