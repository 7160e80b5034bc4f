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

test.run();
