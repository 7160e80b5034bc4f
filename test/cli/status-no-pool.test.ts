// `podway status` of a node whose datastore has no IPPool (root, a scratch network namespace, an
// embedded store): the node is ready (as a Calico node without a pool is) but no pod can get an
// address, which only the CNI ADD's error said ("enabled pools: none"); status says it with the
// command that fixes it, and stops saying it once a pool is applied (the running store watched).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ok, podway, runInNetns, tempDir, type NetnsRun } from './cli-kit';
import { addNetns } from '../helpers/netns';

const t = suite('status without a pool');
const NS = `pw-np-${randomBytes(3).toString('hex')}`;
const NO_POOL = /^no IPPool for this node's pods \(none in the datastore, all disabled, or none of the node's address family\): a pod's CNI ADD gets no address .*apply -f pool\.yaml/m;
let run: NetnsRun | null = null;
let sock = '';
let store = '';
let dropNs = (): void => undefined;

/** `podway status` text, retried for up to `ms` until `test` holds (the last text either way). */
async function statusUntil(test: (s: string) => boolean, ms: number): Promise<string> {
  const end = Date.now() + ms;
  let out = '';
  while (Date.now() < end) {
    out = (await podway(['status', '--control', sock])).out;
    if (test(out)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return out;
}

t.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('status without a pool needs root (a network namespace)');
  dropNs = addNetns(NS);
  for (const args of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.2.3/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up'], ['link', 'set', 'd1', 'up']]) {
    execFileSync('ip', ['-n', NS, ...args]);
  }
  store = `embedded:${tempDir()}`;
  sock = path.join(tempDir(), 'c.sock');
  run = await runInNetns(NS, sock, ['--node', 'np', '--ip', '10.1.2.3/24', '--datastore', store]);
});

t.after(async () => {
  await run?.stop();
  dropNs();
});

t('no pool: ready, and status names the missing pool with the command; a pool applied: the line goes', async () => {
  const before = await statusUntil((s) => NO_POOL.test(s), 15_000);
  assert.match(before, NO_POOL, `status without a pool: ${before}\n${run!.log().slice(-2000)}`);
  assert.match(before, /^ready$/m, 'a node without a pool is ready (as a Calico node is)');
  const pool = path.join(tempDir(), 'pool.yaml');
  // a disabled pool gives no address either: the line stays (once the model holding it is applied)
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, vxlanMode: Always, disabled: true}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
  const applied = (s: string): number => Number(/(\d+) model updates applied/.exec(s)?.[1] ?? -1);
  const n0 = applied(before);
  const disabled = await statusUntil((s) => applied(s) > n0, 20_000);
  assert.ok(applied(disabled) > n0, `the model with the disabled pool applied: ${disabled}`);
  assert.match(disabled, NO_POOL, `a disabled pool only: ${disabled}`);
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16, vxlanMode: Always}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
  const after = await statusUntil((s) => !NO_POOL.test(s) && /^podway is running/.test(s), 20_000);
  assert.not.match(after, NO_POOL, `the pool applied: ${after}`);
});

t.run();
