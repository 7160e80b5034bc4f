/**
 * A peer node that answers no ARP, as the operator sees it (root, network namespaces, the file
 * datastore): node2's Node names an address on node1's underlay subnet that nobody holds (taken
 * off node2's eth0 before node1 starts; node2 runs no podway). node1's podway:
 *  - `podway status` (JSON) lists node2 under `unreachableNodes` with its address and a `since`,
 *    and the text says "node node2 (IP): underlay neighbour unreachable since ...";
 *  - /metrics has podway_underlay_neighbors_failed 1, and /readyz stays 200 (node1 forwards for
 *    its own pods and every other node);
 *  - once the address is held again (added back to node2's eth0) and answers the next probe
 *    round, the entry, the status line and the gauge go (0).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Lab, LabNodeSpec, run } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { guard, teardown, isRoot, until, logTail } from './e2e-kit';
import { execBounded } from './tools';
import { parseMetrics, valueOf } from '../observe/prom-text';

const SPEC: LabNodeSpec[] = [
  { name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] },
  { name: 'node2', subnet: 'a', pods: [{ name: 'web-2', type: 'veth' }] },
];
const PORT = 9093;
const HTTP_GET = path.join(__dirname, 'http-get.js');
const PODWAY = path.resolve(__dirname, '..', '..', '..', 'bin', 'podway.js');
/** Short neighbour timings: a probe round fails in about a second. */
const PODWAY_ARGS = ['--metrics-port', String(PORT), '--neighbor-reachable', '2000', '--neighbor-retrans', '300'];

interface Unreachable { neighbor: string; nodes: string[]; nodeIps: string[]; since: string }

let lab: Lab;

async function get(pathname: string): Promise<{ status: number; body: string }> {
  const r = await execBounded('ip', ['netns', 'exec', lab.node('node1').ns, process.execPath, HTTP_GET, `http://127.0.0.1:${PORT}${pathname}`], 10_000);
  if (r.code !== 0) throw new Error(`http-get ${pathname}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as { status: number; body: string };
}

async function gauge(): Promise<number | undefined> {
  return valueOf(parseMetrics((await get('/metrics')).body), 'podway_underlay_neighbors_failed');
}

async function unreachable(): Promise<Unreachable[]> {
  return ((await controlRequest(lab.node('node1').control, { cmd: 'status' }, 5000)) as { unreachableNodes: Unreachable[] }).unreachableNodes;
}

async function statusText(): Promise<string> {
  const r = await execBounded(process.execPath, [PODWAY, 'status', '--control', lab.node('node1').control], 15_000);
  if (r.code !== 0) throw new Error(`podway status: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

test.before(() => {
  if (!isRoot()) throw new Error('neighbour e2e tests need root (network namespaces)');
  lab = guard(new Lab(SPEC));
  lab.build();
});

test.after(async () => {
  if (lab) await teardown(lab);
});

test('a Node whose address answers no ARP: listed in status, podway_underlay_neighbors_failed 1, /readyz 200; gone once it answers', async () => {
  const n2 = lab.node('node2');
  const addr = `${n2.ip}/${n2.prefix}`;
  run('ip', ['-n', n2.ns, 'addr', 'del', addr, 'dev', 'eth0']);
  try {
    await lab.startPodway('node1', 20_000, PODWAY_ARGS);
    let u: Unreachable[] = [];
    assert.ok(await until(async () => (u = await unreachable()).length > 0, 20_000, 200), 'node2\'s address fails its probe round');
    assert.is(u.length, 1, JSON.stringify(u));
    assert.is(u[0].neighbor, n2.ip);
    assert.equal(u[0].nodes, ['node2']);
    assert.equal(u[0].nodeIps, [n2.ip]);
    assert.ok(Date.parse(u[0].since) <= Date.now() && Date.now() - Date.parse(u[0].since) < 600_000, `since is a recent time: ${u[0].since}`);
    const line = (await statusText()).split('\n').find((l) => l.includes('unreachable since'));
    assert.is(line, `node node2 (${n2.ip}): underlay neighbour unreachable since ${u[0].since}; its pods cannot be reached`);
    assert.is(await gauge(), 1, 'podway_underlay_neighbors_failed');
    const ready = await get('/readyz');
    assert.is(ready.status, 200, `readyz stays 200: ${ready.body}`);

    // Held again: node2's kernel answers the next probe round (after the hold-down, 10 s doubling
    // with each unanswered round, at most 60 s).
    run('ip', ['-n', n2.ns, 'addr', 'add', addr, 'dev', 'eth0']);
    assert.ok(await until(async () => (await unreachable()).length === 0, 75_000, 200), 'node2 answers: no longer listed');
    assert.is(await gauge(), 0, 'podway_underlay_neighbors_failed back to 0');
    assert.not.match(await statusText(), /unreachable since/);
  } catch (e) {
    console.log(logTail(lab, 30));
    throw e;
  } finally {
    run('ip', ['-n', n2.ns, 'addr', 'replace', addr, 'dev', 'eth0'], { allowFail: true });
  }
});

test.run();
