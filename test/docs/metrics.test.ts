// docs/observability.md, "Metrics table", holds every series /metrics serves and nothing else
// (root: a network namespace lab and a real etcd). A real `podway run` on etcd with --bgp (a BGPPeer
// nobody answers: its sessions' series are there) and a pod: a Prometheus text parser reads its
// scrape, and every family's name and type must have a row saying the same, every row a family
// (rows with `*` match families by prefix: Node's process metrics), and the labels of every sample
// must be its row's labels. A metric added to a collector fails here until its row is written.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LabNodeSpec } from '../../src/lab/lab';
import type { KvStore } from '../../src/control/kv/kv';
import { applyResource } from '../../src/control/v3-store';
import { guard, teardown, isRoot, until } from '../e2e/e2e-kit';
import { execBounded } from '../e2e/tools';
import { parseMetrics, type Family } from '../observe/prom-text';
import { controlRequest } from '../../src/dataplane/control-client';
import { tableUnder } from './tables';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DOC = 'docs/observability.md';
const HEADING = 'Metrics table';
const HTTP_GET = path.join(__dirname, '..', 'e2e', 'http-get.js');
const PORT = 9391;
const SPEC: LabNodeSpec[] = [{ name: 'node1', subnet: 'a', pods: [{ name: 'web-1', type: 'veth' }] }];
/** Labels a histogram's or summary's own series carry, not the metric's. */
const SERIES_LABELS = new Set(['le', 'quantile']);

interface Row { name: string; type: string; labels: string[] }

function rows(): Row[] {
  return tableUnder(readFileSync(path.join(ROOT, DOC), 'utf8'), HEADING).map((cells, k) => {
    assert.is(cells.length, 4, `${DOC}, "${HEADING}", row ${k + 1}: four cells (Metric | Type | Labels | Meaning): ${cells.join(' | ')}`);
    const names = [...cells[0].matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    assert.ok(names.length > 0, `row ${k + 1}: the metric as \`name\`: ${cells[0]}`);
    return names.map((name) => ({ name, type: cells[1], labels: [...cells[2].matchAll(/`([^`]+)`/g)].map((m) => m[1]).sort() }));
  }).flat();
}

function rowOf(table: Row[], name: string): Row | undefined {
  return table.find((r) => r.name === name) ?? table.find((r) => r.name.endsWith('*') && name.startsWith(r.name.slice(0, -1)));
}

/** What the table says against a scrape: the problems, [] when they agree. */
function compare(table: Row[], scrape: Map<string, Family>): string[] {
  const problems: string[] = [];
  for (const [name, f] of scrape) {
    const row = rowOf(table, name);
    const type = f.type.toLowerCase();
    if (!row) {
      const labels = [...new Set(f.metrics.flatMap((s) => Object.keys(s.labels ?? {})))].filter((l) => !SERIES_LABELS.has(l));
      problems.push(`missing: ${name}; add to ${DOC}, "${HEADING}": | \`${name}\` | ${type} | ${labels.map((l) => `\`${l}\``).join(', ')} | what it counts, when |`);
      continue;
    }
    if (row.name.endsWith('*')) continue;
    if (row.type !== type) problems.push(`${name}: the table says ${row.type}, /metrics serves a ${type}`);
    for (const s of f.metrics) {
      const labels = Object.keys(s.labels ?? {}).filter((l) => !SERIES_LABELS.has(l)).sort();
      if (labels.join(',') !== row.labels.join(',')) {
        problems.push(`${name}: the table says labels [${row.labels.join(', ')}], a sample has [${labels.join(', ')}]`);
        break;
      }
    }
  }
  for (const row of table) {
    const there = row.name.endsWith('*') ? [...scrape.keys()].some((n) => n.startsWith(row.name.slice(0, -1))) : scrape.has(row.name);
    if (!there) problems.push(`stale: ${row.name} is in ${DOC}, "${HEADING}" but /metrics does not serve it (renamed or removed?)`);
  }
  return problems;
}

test('the table and a real podway run\'s /metrics (etcd, --bgp, a pod) name the same metrics, types and labels', async () => {
  if (!isRoot()) throw new Error('the metrics table test needs root (network namespaces, etcd)');
  const table = rows();
  assert.ok(table.length > 50, `${table.length} rows`);
  const lab = guard(new Lab(SPEC));
  let kv: KvStore | null = null;
  let close: (() => Promise<void>) | null = null;
  try {
    lab.build();
    const store = await lab.openKvStore('etcd', 'obsdocs');
    ({ kv, close } = store);
    await lab.useKvDatastore(kv, store.spec);
    // A peer in the lab's fabric that nothing answers: the session series exist (Active, Connect).
    await applyResource(kv, { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: `obsdocs-${process.pid}` }, spec: { peerIP: '10.99.0.253', asNumber: 64512 } });
    await lab.startPodway('node1', 30_000, ['--bgp', '--metrics-port', String(PORT), '--metrics-host', '127.0.0.1']);
    const scrape = async (): Promise<Map<string, Family>> => {
      const r = await execBounded('ip', ['netns', 'exec', lab.node('node1').ns, process.execPath, HTTP_GET, `http://127.0.0.1:${PORT}/metrics`], 10_000);
      if (r.code !== 0) throw new Error(`http-get: exit ${r.code}: ${r.stderr}`);
      return parseMetrics((JSON.parse(r.stdout.trim()) as { body: string }).body);
    };
    // the BGP series come once the model thread's speaker knows the peer
    let m = await scrape();
    assert.ok(await until(async () => ((m = await scrape()).get('podway_bgp_session_state')?.metrics.length ?? 0) > 0, 30_000, 500), `no BGP session series: ${[...m.keys()].join(' ')}`);
    assert.ok((m.get('podway_port_rx_packets_total')?.metrics.length ?? 0) > 0, 'per-port series are there');
    const fences = m.get('podway_etcd_create_fences_total');
    assert.ok(fences && fences.metrics.some((s) => s.labels?.result === 'unwritten' && /^etcd /.test(s.labels.store ?? '')), `fence counts per store: ${JSON.stringify(fences?.metrics)}`);
    // podway status carries the same counts (its text shows them once one is not 0)
    const st = (await controlRequest(lab.node('node1').control, { cmd: 'status' }, 10_000)) as { etcdFences?: { store: string; written: number; moved: number; unwritten: number }[] };
    assert.equal(st.etcdFences?.map((f) => Object.keys(f).sort()), [['moved', 'store', 'unwritten', 'written']], JSON.stringify(st.etcdFences));
    assert.equal(compare(table, m), []);

    // the comparison finds a row missing, a stale one, a wrong type and wrong labels
    const changed = table.filter((r) => r.name !== 'podway_ready').map((r) => (r.name === 'podway_routes' ? { ...r, type: 'counter' } : r.name === 'podway_events_total' ? { ...r, labels: ['reason'] } : r));
    changed.push({ name: 'podway_gone_total', type: 'counter', labels: [] });
    const found = compare(changed, m).join('\n');
    for (const p of [/^missing: podway_ready;/m, /^stale: podway_gone_total/m, /^podway_routes: the table says counter, \/metrics serves a gauge/m, /^podway_events_total: the table says labels \[reason\], a sample has \[event\]/m]) assert.match(found, p);
  } finally {
    await teardown(lab);
    await close?.();
  }
});

test.run();
