// Registering the node again after the datastore was replaced (src/cli/re-register.ts, as
// `podway run` does it) on a real embedded store, with the real registration (joinCluster): a
// failure that is not an unreachable store (another Node holding this node's address in the new
// store: calico-node refuses that too) is tried again with backoff until it succeeds (the other
// Node deleted), instead of being logged once and never tried again; stop() ends the retries; a
// request while one runs registers once more after it.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { joinCluster } from '../../src/cli/join';
import { ReRegistration } from '../../src/cli/re-register';
import { parseDatastoreSpec } from '../../src/control/kv/spec';
import { until } from '../helpers/until';
import { embeddedTarget } from './cli-kit';

const NODES = '/calico/resources/v3/projectcalico.org/nodes/';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t = suite('re-registration');

/** A fresh embedded store where Node `other` holds 10.98.0.7/24 (the address node1 registers with). */
async function storeWithConflict() {
  const { spec, kv } = await embeddedTarget.open();
  const ds = parseDatastoreSpec(spec);
  await joinCluster(ds, { node: 'other', ip: '10.98.0.7/24', ip6: 'none' }, () => {});
  const lines: { level: 'info' | 'error'; m: string }[] = [];
  let attempts = 0;
  const registration = new ReRegistration('node1', async () => {
    attempts++;
    await joinCluster(ds, { node: 'node1', ip: '10.98.0.7/24', ip6: 'none' }, () => {});
  }, { info: (m) => lines.push({ level: 'info', m }), error: (m) => lines.push({ level: 'error', m }) }, { first: 100, max: 400 });
  return { kv, registration, lines, attempts: () => attempts };
}

t('a registration refused (another Node holds the address) is tried again with backoff until it succeeds', async () => {
  const { kv, registration, lines, attempts } = await storeWithConflict();
  try {
    registration.request('etcd at URL went back to revision 3 (test)');
    assert.ok(await until(() => lines.filter((l) => l.level === 'error').length >= 3, 10_000, 20), JSON.stringify(lines));
    const errors = lines.filter((l) => l.level === 'error').map((l) => l.m);
    assert.match(errors[0]!, /^node node1: registering again after the datastore was replaced failed \(attempt 1\): node node1: Node other is already using the IPv4 address 10\.98\.0\.7\b.*; trying again in 0\.1 s$/);
    assert.match(errors[1]!, /\(attempt 2\): .*; trying again in 0\.2 s$/);
    assert.match(errors[2]!, /\(attempt 3\): .*; trying again in 0\.4 s$/);
    const failing = registration.status();
    assert.ok(failing && failing.attempts >= 3 && /Node other is already using/.test(failing.error), JSON.stringify(failing));
    assert.is(await kv.get(`${NODES}node1`), null, 'nothing registered while it fails');
    // The operator deletes the stale Node: the next try registers node1.
    assert.ok(await kv.delete(`${NODES}other`));
    assert.ok(await until(() => lines.some((l) => l.level === 'info'), 10_000, 20), JSON.stringify(lines));
    assert.match(lines.find((l) => l.level === 'info')!.m, /^node node1 registered again after: etcd at URL went back to revision 3 \(test\) \(attempt \d+\)$/);
    const node = await kv.get(`${NODES}node1`);
    assert.ok(node, 'node1 registered');
    assert.match(node!.value, '"ipv4Address":"10.98.0.7/24"');
    assert.is(registration.status(), null);
    const n = attempts();
    await sleep(600);
    assert.is(attempts(), n, 'no try after it succeeded');
  } finally {
    registration.stop();
    await registration.idle();
    await kv.close();
  }
});

t('stop() ends the retries; a request while one runs registers once more after it', async () => {
  const { kv, registration, lines, attempts } = await storeWithConflict();
  try {
    registration.request('first replacement');
    registration.request('second replacement'); // while the first runs
    assert.ok(await until(() => attempts() >= 2, 10_000, 20), JSON.stringify(lines));
    assert.ok(lines.some((l) => /the datastore was replaced again meanwhile: registering again now/.test(l.m)), JSON.stringify(lines));
    registration.stop();
    await registration.idle();
    const n = attempts();
    await sleep(1000); // past every wait the backoff (0.1-0.4 s) would have made
    assert.is(attempts(), n, 'no try after stop()');
  } finally {
    registration.stop();
    await kv.close();
  }
});

t.run();
