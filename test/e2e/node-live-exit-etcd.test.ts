/**
 * A `podway run` that claimed its node's liveness key (control/node-live.ts) and then does not get
 * to forward removes the key as it exits, as a clean stop does (root, a network namespace, a real
 * etcd in the lab's fabric namespace): it used to be left for its lease to expire (up to 15 s),
 * and another host's start meanwhile waited for that, or (a start of this node elsewhere) was
 * refused.
 * (a) a SIGTERM while starting, once the key is claimed and podway run's main thread heard of it
 *     (its log line): exit 143, the key gone at the exit, and no lease granted again by the holder
 *     (it took the exit's revoke for an expiry and wrote the key again on a new lease, which
 *     outlived the exit when that write landed first). Before the holder's stop flag and the
 *     signal's one exit, beside two busy loops (load 13-19), 3 of 20 runs exited 1 (the aborted
 *     start's failure exited first) and 3 of the 10 logged granted a new lease at the exit;
 * (b) a start that fails after the claim (another Node holds the node's address: the
 *     registration refuses to write it): exit 1, the key gone at the exit, no lease granted again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Lab, LabKvStore, LabNodeSpec } from '../../src/lab/lab';
import { liveKey } from '../../src/control/node-live';
import { applyResource } from '../../src/control/v3-store';
import { guard, teardown, isRoot, spawnCollected, type Collected } from './e2e-kit';

const SPEC: LabNodeSpec[] = [{ name: 'node1', subnet: 'a', pods: [] }];
const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
const BLOCKER = `live27-blocker-${process.pid}`;

let lab: Lab | null = null;
let store: LabKvStore | null = null;
let ok = false;
const runs: Collected[] = [];

/** `podway run --node node1` in node1's namespace (not through the lab: no model cache). */
function run(limitMs: number): Collected {
  const n1 = lab!.node('node1');
  const c = spawnCollected('ip', ['netns', 'exec', n1.ns, process.execPath, BIN, 'run', '--node', 'node1', '--datastore', store!.spec, '--control', n1.control, '--model-cache', 'none'], limitMs, { signal: 'SIGTERM' });
  runs.push(c);
  return c;
}

/**
 * Until podway run's main thread said it heard of the claim (run.ts onLiveClaimed: the revoke of a
 * signal while starting then goes through its own client, not through the registration's thread)
 * and node1's liveness key is there (polled every 10 ms), or `c` exited, or 60 s.
 */
async function claimed(c: Collected): Promise<boolean> {
  for (let k = 0; k < 6000; k++) {
    if (c.proc.exitCode !== null) return false;
    if (/its liveness key claimed on lease \S+: held from here/.test(c.err()) && (await store!.kv.get(liveKey('node1'))) !== null) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

test.before(async () => {
  if (!isRoot()) throw new Error('e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC, { podOffloads: false }));
  lab.build();
  lab.setMode('vxlan');
  store = await lab.openKvStore('etcd', 'podway-node-live-exit-');
  await lab.useKvDatastore(store.kv, store.spec);
});

test.after(async () => {
  for (const c of runs) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  for (const c of runs) await c.done.catch(() => null);
  if (!ok) for (const c of runs) console.log(`--- run:\n${c.err().split('\n').slice(-15).join('\n')}`);
  if (lab) await teardown(lab);
  await store?.close();
});

test('(a) SIGTERM while starting, after the claim: exit 143, the key gone at once', async () => {
  // The signal is sent once the main thread said it heard of the claim and the key is seen; a
  // start quick enough to forward by then is a clean stop (also without a key after it), and is
  // tried again (3 tries at most).
  let duringStart = 0;
  for (let attempt = 0; attempt < 3 && duringStart === 0; attempt++) {
    const c = run(120_000);
    assert.ok(await claimed(c), `the key claimed: ${c.err().split('\n').slice(-5).join('\n')}`);
    c.proc.kill('SIGTERM');
    const code = await c.done;
    const left = await store!.kv.get(liveKey('node1'));
    // The holder never writes the key again once the exit is asked (the exit's revoke of the
    // claimed lease it holds was taken for an expiry: a new lease, the key written again on it,
    // left behind by the exit).
    assert.not.match(c.err(), /granting a new one/, `no lease granted again at the exit: ${c.err().split('\n').slice(-8).join('\n')}`);
    if (/SIGTERM while starting/.test(c.err())) {
      duringStart++;
      // the signal's status, also when the start it aborted failed meanwhile ("stopped before
      // the datastore answered": that path exited 1 when it ended first)
      assert.is(code, 143, c.err());
      assert.is(left, null, `the key revoked before the exit: ${c.err().split('\n').slice(-6).join('\n')}`);
    } else {
      assert.is(code, 0, c.err());
      assert.is(left, null, 'a clean stop revoked it');
    }
  }
  assert.is(duringStart, 1, 'a SIGTERM landed while starting');
});

test('(b) a start failing after the claim (its address another Node\'s): exit 1, the key gone at once', async () => {
  const ip = `${lab!.node('node1').ip}/24`;
  // node1's Node gone (a new node): its registration checks the other Nodes, and one has its address.
  await store!.kv.delete('/calico/resources/v3/projectcalico.org/nodes/node1');
  await applyResource(store!.kv, { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: BLOCKER }, spec: { bgp: { ipv4Address: ip } } });
  const c = run(120_000);
  const code = await c.done;
  assert.is(code, 1, c.err());
  assert.match(c.err(), new RegExp(`Node ${BLOCKER} is already using the IPv4 address`));
  assert.is(await store!.kv.get(liveKey('node1')), null, `the key revoked before the exit: ${c.err().split('\n').slice(-6).join('\n')}`);
  assert.match(c.err(), /undoing what the start made \([^)]*the liveness key claimed/, 'the claim undone');
  // nor written again by the holder at that exit (before its stop flag: in 10 of 10 runs beside
  // two busy loops it took the undo's revoke for an expiry and granted a new lease)
  assert.not.match(c.err(), /granting a new one/, `no lease granted again at the exit: ${c.err().split('\n').slice(-8).join('\n')}`);
  ok = true;
});

test.run();
