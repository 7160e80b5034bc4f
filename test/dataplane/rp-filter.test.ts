// The reverse-path filtering podway applies to decapsulated IPv4 (Pipeline.rpFilter) is what a
// Calico node's tunnel devices would have: the larger of net.ipv4.conf.all and .default rp_filter
// (Felix sets rp_filter on cali interfaces only), read by the engine at start in its own network
// namespace (rp-filter.ts). A namespace of its own (root) for the engine's read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseRpFilter, readTunnelRpFilter } from '../../src/dataplane/rp-filter';
import { withNetns } from '../helpers/netns';

test('parse: 0, 1 or 2 as the kernel writes it; anything else an error naming the file', () => {
  assert.is(parseRpFilter('1\n', 'f'), 1);
  assert.is(parseRpFilter('2', 'f'), 2);
  for (const bad of ['', '3', '-1', 'strict', '1 2']) assert.throws(() => parseRpFilter(bad, 'rp-file'), /^rp-file: /, JSON.stringify(bad));
});

test('the larger of all and default; a missing file counts 0 (the kernel default); an unreadable value is an error naming the file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pw-wire2-rp-${process.pid}-`));
  try {
    const put = (which: string, v: string) => {
      fs.mkdirSync(path.join(dir, which), { recursive: true });
      fs.writeFileSync(path.join(dir, which, 'rp_filter'), v);
    };
    assert.is(readTunnelRpFilter(dir), 0, 'neither file');
    put('all', '0\n');
    put('default', '2\n');
    assert.is(readTunnelRpFilter(dir), 2);
    put('all', '1\n');
    assert.is(readTunnelRpFilter(dir), 2, 'max(1, 2): the kernel takes the larger');
    put('default', '0\n');
    assert.is(readTunnelRpFilter(dir), 1);
    put('default', 'x\n');
    assert.throws(() => readTunnelRpFilter(dir), new RegExp(`^${dir}/default/rp_filter: "x" is not an rp_filter value`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the engine reads its namespace\'s values at start into the pipeline', async () => {
  await withNetns(['rpf'], async ([N]) => {
    const dist = path.resolve(__dirname, '../../src/dataplane');
    const script = (all: number, def: number) => [
      `require('node:fs').writeFileSync('/proc/sys/net/ipv4/conf/all/rp_filter', '${all}');`,
      `require('node:fs').writeFileSync('/proc/sys/net/ipv4/conf/default/rp_filter', '${def}');`,
      `const { Engine } = require(${JSON.stringify(path.join(dist, 'engine'))});`,
      `const { MemoryIO } = require(${JSON.stringify(path.join(dist, 'memory-io'))});`,
      'const e = new Engine({ io: new MemoryIO(), manageHost: false });',
      'console.log(JSON.stringify([e.pipe.rpFilter, e.status().rpFilter]));',
      'process.exit(0);',
    ].join('\n');
    for (const [all, def, want] of [[0, 0, 0], [1, 0, 1], [0, 2, 2], [1, 2, 2]]) {
      const got = JSON.parse(N.exec(process.execPath, ['-e', script(all, def)], { timeoutMs: 60_000 }).trim().split('\n').pop()!);
      assert.equal(got, [want, want], `all ${all}, default ${def}: the pipeline's, and status's`);
    }
  });
});

test('read again while running (Engine.rereadRpFilter): a change is in force at once and in status; none: null; an unreadable value throws naming the file, the value kept; a given value is never read again', async () => {
  await withNetns(['rpf2'], async ([N]) => {
    const dist = path.resolve(__dirname, '../../src/dataplane');
    const script = [
      "const fs = require('node:fs');",
      "const put = (which, v) => fs.writeFileSync(`/proc/sys/net/ipv4/conf/${which}/rp_filter`, String(v));",
      "put('all', 0); put('default', 1);",
      `const { Engine } = require(${JSON.stringify(path.join(dist, 'engine'))});`,
      `const { MemoryIO } = require(${JSON.stringify(path.join(dist, 'memory-io'))});`,
      'const e = new Engine({ io: new MemoryIO(), manageHost: false });',
      'const out = { start: e.pipe.rpFilter, same: e.rereadRpFilter() };',
      "put('default', 0);",
      'out.off = e.rereadRpFilter(); out.offPipe = e.pipe.rpFilter; out.change = e.status().rpFilterChange;',
      "put('all', 2);",
      'out.loose = e.rereadRpFilter();',
      "const bad = fs.mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'pw-felix2-rp-')); fs.mkdirSync(bad + '/all'); fs.writeFileSync(bad + '/all/rp_filter', 'x');",
      "try { e.rereadRpFilter(bad); } catch (err) { out.bad = err.message.replace(bad, 'DIR'); } fs.rmSync(bad, { recursive: true });",
      'out.kept = e.pipe.rpFilter;',
      "const g = new Engine({ io: new MemoryIO(), manageHost: false, rpFilter: 1 }); put('all', 0); out.given = [g.rereadRpFilter(), g.pipe.rpFilter];",
      'console.log(JSON.stringify(out));',
      'process.exit(0);',
    ].join('\n');
    const got = JSON.parse(N.exec(process.execPath, ['-e', script], { timeoutMs: 60_000 }).trim().split('\n').pop()!);
    assert.is(got.start, 1);
    assert.is(got.same, null, 'unchanged: nothing to say');
    assert.equal(got.off, { was: 1, now: 0 });
    assert.is(got.offPipe, 0, 'in force in the pipeline');
    assert.is(got.change.was, 1, 'status names the last change');
    assert.ok(!Number.isNaN(Date.parse(got.change.at)), 'and when');
    assert.equal(got.loose, { was: 0, now: 2 }, '`all` is read too');
    assert.match(got.bad, /^DIR\/all\/rp_filter: "x" is not an rp_filter value/);
    assert.is(got.kept, 2, 'an unreadable value keeps the one in force');
    assert.equal(got.given, [null, 1], 'a value given in the options stays');
  });
});

test.run();
