// `podway get -o custom-columns=...` and `-o custom-columns-file=...` as a user runs them (a real
// `node bin/podway.js` process) on an embedded store holding the calico-v3 fixture cluster:
// kubectl's HEADER:PATH columns, calicoctl's bare headings, `[N]`/`[*]`, `<none>` for what is not
// there, and a bad spec refused as a usage error (exit 2, one line naming the problem) before the
// datastore is opened.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { podway, ok, tempDir, ROOT } from './cli-kit';

const CLUSTER = path.join(ROOT, 'test', 'fixtures', 'calico-v3', 'cluster.yaml');
let ds: string[] = [];

test.before(async () => {
  ds = ['--datastore', `embedded:${path.join(tempDir(), 'store')}`];
  await ok(['apply', '-f', CLUSTER, ...ds]);
});

/** The table's rows split into cells (three or more blanks between columns). */
const rows = (out: string) => out.trimEnd().split('\n').map((l) => l.split(/ {3,}/));

test('HEADER:PATH columns: fields, a missing field as <none>, braces and a path without the leading dot', async () => {
  const out = await ok(['get', 'ippool', '-o', 'custom-columns=NAME:.metadata.name,CIDR:.spec.cidr,NAT:{.spec.natOutgoing},VX:spec.vxlanMode,TIER:.metadata.labels.tier', ...ds]);
  assert.equal(rows(out), [['NAME', 'CIDR', 'NAT', 'VX', 'TIER'], ['pool-a', '10.244.0.0/16', 'true', 'Always', '<none>']]);
});

test('lists: [N] one element, [*] every element joined by commas, a map as JSON, a quoted key with dots', async () => {
  const out = await ok(['get', 'wep', '-A', '-o',
    "custom-columns=NS:.metadata.namespace,NET0:.spec.ipNetworks[0],NETS:.spec.ipNetworks[*],NET5:.spec.ipNetworks[5],PROFILES:.spec.profiles,APP:.metadata.labels.app,ORCH:.metadata.labels['projectcalico.org/orchestrator']", ...ds]);
  const r = rows(out);
  assert.equal(r[0], ['NS', 'NET0', 'NETS', 'NET5', 'PROFILES', 'APP', 'ORCH']);
  const prod = r.find((row) => row[0] === 'prod');
  assert.equal(prod, ['prod', '10.244.0.1/32', '10.244.0.1/32', '<none>', 'kns.prod', 'web', 'k8s'], out);
  const dflt = r.find((row) => row[0] === 'default')!;
  assert.is(dflt[5], '<none>', out);

  // [*] over a map: its values; a whole map: compact JSON
  const nodes = await ok(['get', 'node', 'node1', '-o', 'custom-columns=NAME:.metadata.name,LABELS:.metadata.labels,VALUES:.metadata.labels[*]', ...ds]);
  const n1 = rows(nodes)[1]!;
  assert.is(n1[0], 'node1');
  assert.equal(JSON.parse(n1[1]!), { 'kubernetes.io/hostname': 'node1', zone: 'a' });
  assert.equal(n1[2]!.split(',').sort(), ['a', 'node1']);
});

test("calicoctl's bare headings: the kind's own columns (wide ones included), mixed with paths", async () => {
  const out = await ok(['get', 'node', '-o', 'custom-columns=NAME,asn,IPV4,TUNNEL:.spec.ipv4VXLANTunnelAddr', ...ds]);
  assert.equal(rows(out), [['NAME', 'ASN', 'IPV4', 'TUNNEL'], ['node1', '64513', '10.99.0.1/24', '10.244.0.0'], ['node2', '(64512)', '10.99.0.2/24', '10.244.0.64']]);
});

test('custom-columns-file: a line of headers, a line of paths', async () => {
  const file = path.join(tempDir(), 'cols.txt');
  writeFileSync(file, 'NAME          CIDR\n.metadata.name   .spec.cidr\n');
  assert.equal(rows(await ok(['get', 'ippool', '-o', `custom-columns-file=${file}`, ...ds])), [['NAME', 'CIDR'], ['pool-a', '10.244.0.0/16']]);
});

test('a bad spec: exit 2, one line naming the problem, before the datastore is opened', async () => {
  const dir = tempDir();
  const uneven = path.join(dir, 'uneven.txt');
  writeFileSync(uneven, 'NAME CIDR\n.metadata.name\n');
  const absent = path.join(dir, 'store-never-made');
  const cases: [string, RegExp][] = [
    ['custom-columns', /custom-columns needs a list of columns/],
    ['custom-columns=', /give at least one column/],
    ['custom-columns=:.metadata.name', /column 1 \(":\.metadata\.name"\): empty header/],
    ['custom-columns=NAME:.metadata.name,X:.spec..cidr', /column 2 \("X:\.spec\.\.cidr"\): recursive descent/],
    ['custom-columns=X:.spec.ipNetworks[?(@.a)]', /unsupported subscript \[\?\(@\.a\)\]/],
    ['custom-columns=X:.spec.ipNetworks[0', /unclosed "\["/],
    ['custom-columns=X:', /empty path/],
    ['custom-columns=NAME,BOGUS', /IPPool has no column "BOGUS" \(its columns: NAME, CIDR, NAT/],
    [`custom-columns-file=${path.join(dir, 'missing.txt')}`, /cannot read .*missing\.txt: ENOENT/],
    [`custom-columns-file=${uneven}`, /uneven\.txt: 2 header\(s\) but 1 path\(s\)/],
    ['go-template={{.metadata.name}}', /calicoctl's go-template is not supported by podway/],
  ];
  for (const [format, message] of cases) {
    const r = await podway(['get', 'ippool', '-o', format, '--datastore', `embedded:${absent}`]);
    assert.is(r.code, 2, `-o ${format}: ${r.err}`);
    assert.is(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err, message);
    assert.is(r.out, '');
  }
  assert.not.ok(existsSync(absent), 'a refused format opened (created) the datastore');
});

test.run();
