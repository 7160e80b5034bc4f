// The kernel's main IPv4 table for the underlay next hops (src/dataplane/host.ts readKernelRoutes,
// underlayNextHops; src/dataplane/kernel-routes.ts): read from a real network namespace, the next
// hop chosen as the kernel chooses it (longest prefix, then lowest metric; checked against the
// kernel's own `ip route get`), and a read that fails (the namespace deleted: `ip -n` cannot
// enter it) is an error that keeps the last good table, is tried again, and shows in status and
// metrics; it used to be an empty table, every node then taken as on-link.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { Registry } from 'prom-client';
import { withNetns, ip as hostIp, sh } from '../helpers/netns';
import { readKernelRoutes, underlayNextHops, underlayNextHops6, isRoute6, parseRoutes6, type ExecFn, type KernelRoute, type KernelRoute4 } from '../../src/dataplane/host';
import { KernelRoutes } from '../../src/dataplane/kernel-routes';
import { KernelRoutesCollector } from '../../src/observe/kernel-routes-metrics';
import { formatIpv4, parseIpv4 } from '../../src/packet';

/** `ip` in namespace `ns` (`ip -n NS ...`): a real command, which fails once the namespace is gone. */
const inNetns = (ns: string): ExecFn => (file, args, timeoutMs) => new Promise((resolve) => {
  execFile(file, ['-n', ns, ...args], { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
    resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr, error: err && typeof err.code !== 'number' ? err.message : null });
  });
});

const hops = (table: readonly KernelRoute[], ips: string[]) => Object.fromEntries([...underlayNextHops(table, ips.map(parseIpv4))].map(([k, v]) => [formatIpv4(k), formatIpv4(v)]));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An underlay link with 10.77.0.1/24 (a veth pair inside the namespace: no dummy module here). */
function underlay(ns: string): void {
  for (const a of [['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.77.0.1/24', 'dev', 'd0'], ['link', 'set', 'd1', 'up'], ['link', 'set', 'd0', 'up']]) sh('ip', ['-n', ns, ...a]);
}

/** The routes of the test: two /16s to one prefix with different metrics (the higher added first), a more specific /24 with the highest metric, a default, a multipath route and a blackhole. */
function addRoutes(ns: string): void {
  const r = (...a: string[]) => sh('ip', ['-n', ns, 'route', 'add', ...a]);
  r('10.88.0.0/16', 'via', '10.77.0.2', 'metric', '100');
  r('10.88.0.0/16', 'via', '10.77.0.3', 'metric', '50');
  r('10.88.5.0/24', 'via', '10.77.0.4', 'metric', '300');
  r('default', 'via', '10.77.0.9');
  r('10.99.0.0/16', 'nexthop', 'via', '10.77.0.5', 'nexthop', 'via', '10.77.0.6');
  r('blackhole', '10.66.0.0/16');
}

test('underlayNextHops: longest prefix, then the lowest metric, whatever order the table lists them in', () => {
  const route = (cidr: string, gw: string, metric: number): KernelRoute4 => {
    const [a, l] = cidr.split('/');
    const len = Number(l);
    return { addr: parseIpv4(a), mask: len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0, len, gw: gw ? parseIpv4(gw) : 0, metric };
  };
  // the higher metric listed first (it was chosen: the first of the longest prefix)
  const table = [route('10.88.0.0/16', '10.77.0.2', 100), route('10.88.0.0/16', '10.77.0.3', 50), route('10.88.5.0/24', '10.77.0.4', 300), route('0.0.0.0/0', '10.77.0.9', 0), route('10.77.0.0/24', '', 0)];
  assert.equal(hops(table, ['10.88.1.1', '10.88.5.5', '10.1.1.1', '10.77.0.50']), { '10.88.1.1': '10.77.0.3', '10.88.5.5': '10.77.0.4', '10.1.1.1': '10.77.0.9', '10.77.0.50': '10.77.0.50' });
  assert.equal(hops([...table].reverse(), ['10.88.1.1']), { '10.88.1.1': '10.77.0.3' });
  assert.equal(hops([], ['10.88.1.1']), { '10.88.1.1': '10.88.1.1' }, 'no table: on-link');
});

test('read from a real namespace: metrics, multipath and blackhole as the kernel has them; each next hop the one `ip route get` names', async () => {
  await withNetns(['krt'], async ([ns]) => {
    underlay(ns.name);
    addRoutes(ns.name);
    const table = await readKernelRoutes(inNetns(ns.name));
    const of = (cidr: string) => table.flatMap((r) => (!isRoute6(r) && `${formatIpv4(r.addr)}/${r.len}` === cidr ? [[formatIpv4(r.gw), r.metric]] : []));
    assert.equal(of('10.88.0.0/16').sort(), [['10.77.0.2', 100], ['10.77.0.3', 50]].sort());
    assert.equal(of('10.99.0.0/16'), [['10.77.0.5', 0]], 'multipath: its first next hop');
    assert.equal(of('10.66.0.0/16'), [], 'the blackhole: no next hop to resolve');
    const ips = ['10.88.1.1', '10.88.5.5', '10.1.1.1', '10.77.0.50'];
    const chosen = hops(table, ips);
    for (const a of ips) {
      const got = /\bvia (\S+)/.exec(ns.ip('route', 'get', a))?.[1] ?? a;
      assert.is(chosen[a], got, `${a}: the kernel sends it via ${got}`);
    }
    assert.is(chosen['10.88.1.1'], '10.77.0.3', 'the lower metric of the two /16 routes');
  });
});

test('IPv6: the same choice (longest prefix, then lowest metric, on-link without a gateway), read with IPv4 from a real namespace, each next hop the one `ip -6 route get` names', async () => {
  const t6 = parseRoutes6(JSON.stringify([
    { dst: 'fd88::/32', gateway: 'fd77::2', metric: 100 }, { dst: 'fd88::/32', gateway: 'fd77::3', metric: 50 },
    { dst: 'fd88:5::/64', gateway: 'fd77::4', metric: 300 }, { dst: 'default', gateway: 'FD77:0::9', metric: 1024 },
    { dst: 'fd77::/64', metric: 256 }, { dst: 'fd66::/32', type: 'blackhole' }, { dst: 'fd99::/32', nexthops: [{ gateway: 'fd77::5' }, { gateway: 'fd77::6' }] },
  ]));
  const h6 = (table: readonly KernelRoute[], ips: string[]) => Object.fromEntries(underlayNextHops6(table, ips));
  assert.equal(h6(t6, ['fd88:0:1::1', 'fd88:5::5', 'fd10::1', 'fd77::50', 'fd99::1', 'fd66::1']), { 'fd88:0:1::1': 'fd77::3', 'fd88:5::5': 'fd77::4', 'fd10::1': 'fd77::9', 'fd77::50': 'fd77::50', 'fd99::1': 'fd77::5', 'fd66::1': 'fd77::9' });
  assert.equal(h6([...t6].reverse(), ['fd88:0:1::1']), { 'fd88:0:1::1': 'fd77::3' });
  assert.equal(h6([], ['fd88:0:1::1']), { 'fd88:0:1::1': 'fd88:0:1::1' }, 'no table: on-link');
  assert.equal(hops(t6, ['10.88.1.1']), { '10.88.1.1': '10.88.1.1' }, 'IPv6 routes are no IPv4 next hop');
  assert.throws(() => parseRoutes6('[{"dst":"fd88::/129"}]'), /prefix length/);
  await withNetns(['krt6'], async ([ns]) => {
    underlay(ns.name);
    for (const a of [['addr', 'add', 'fd77::1/64', 'dev', 'd0', 'nodad'], ['route', 'add', 'fd88::/32', 'via', 'fd77::2', 'metric', '100'], ['route', 'add', 'fd88::/32', 'via', 'fd77::3', 'metric', '50'], ['route', 'add', 'fd88:5::/64', 'via', 'fd77::4', 'metric', '300'], ['route', 'add', 'default', 'via', 'fd77::9']]) sh('ip', ['-n', ns.name, '-6', ...a]);
    addRoutes(ns.name);
    const table = await readKernelRoutes(inNetns(ns.name));
    assert.ok(table.some((r) => !isRoute6(r)) && table.some(isRoute6), 'both families in one table');
    const ips = ['fd88:0:1::1', 'fd88:5::5', 'fd10::1', 'fd77::50'];
    const chosen = h6(table, ips);
    for (const a of ips) {
      const got = /\bvia (\S+)/.exec(ns.ip('-6', 'route', 'get', a))?.[1] ?? a;
      assert.is(chosen[a], got, `${a}: the kernel sends it via ${got}`);
    }
    assert.is(chosen['fd88:0:1::1'], 'fd77::3');
    assert.equal(hops(table, ['10.88.1.1']), { '10.88.1.1': '10.77.0.3' }, 'IPv4 as before');
  });
});

test('a read that fails: an error (not an empty table), the last good table kept, said once, retried with backoff; read again once it works; status and metrics', async () => {
  await withNetns(['krf'], async ([ns]) => {
    underlay(ns.name);
    addRoutes(ns.name);
    const errors: string[] = [];
    const infos: string[] = [];
    let retries = 0;
    const table = new KernelRoutes(() => readKernelRoutes(inNetns(ns.name)), { error: (m) => errors.push(m), info: (m) => infos.push(m), retry: () => { retries++; void table.refresh(); } }, { firstMs: 50, maxMs: 200 });
    try {
      const good = await table.refresh();
      assert.ok(good.length >= 5, JSON.stringify(good));
      assert.is(table.status().failing, null);
      // the namespace gone: `ip -n` cannot enter it
      hostIp('netns', 'del', ns.name);
      const why = await readKernelRoutes(inNetns(ns.name)).then(() => 'read', (e: Error) => e.message);
      assert.match(why, /^ip -j -4 route show table main exited \d+: .*network namespace/i);
      const kept = await table.refresh();
      assert.is(kept, good, 'the last good table, not an empty one');
      assert.equal(hops(kept, ['10.88.1.1']), { '10.88.1.1': '10.77.0.3' });
      assert.is(errors.length, 1, errors.join('\n'));
      assert.match(errors[0], /^kernel routes unreadable: ip -j -4 route show table main exited \d+: .*; keeping the table read at \S+ \(\d+ routes\); trying again in 0\.05 s/);
      // retried on its own (hooks.retry), with backoff; said once while the reason stays the same
      for (let i = 0; i < 100 && retries < 3; i++) await sleep(20);
      assert.ok(retries >= 3, `retried ${retries} times`);
      assert.is(errors.length, 1, 'one error per failing spell and reason');
      const st = table.status();
      assert.ok(st.failing && st.failing.attempts >= 3 && st.failures >= 3, JSON.stringify(st));
      const reg = new Registry();
      new KernelRoutesCollector(() => table.status()).register(reg);
      const text = await reg.metrics();
      assert.match(text, /^podway_kernel_routes_unreadable 1$/m);
      assert.match(text, new RegExp(`^podway_kernel_route_read_failures_total ${st.failures}$`, 'm'));
      assert.match(text, new RegExp(`^podway_kernel_routes ${good.length}$`, 'm'));
      // back (a namespace of that name again, other routes): read again, said, no more retries
      hostIp('netns', 'add', ns.name);
      underlay(ns.name);
      ns.ip('route', 'add', '10.88.0.0/16', 'via', '10.77.0.8');
      for (let i = 0; i < 100 && table.status().failing !== null; i++) await sleep(20);
      assert.is(table.status().failing, null);
      assert.match(infos.join('\n'), /kernel routes read again \(\d+ routes\) after \d+ failed reads since /);
      assert.equal(hops(table.current(), ['10.88.1.1']), { '10.88.1.1': '10.77.0.8' });
      const n = retries;
      await sleep(300);
      assert.is(retries, n, 'no retry once it reads');
      assert.match(await reg.metrics(), /^podway_kernel_routes_unreadable 0$/m);
    } finally {
      table.stop();
    }
  });
});

test('before any good read: the failure says every node is on-link until one is read', async () => {
  const errors: string[] = [];
  const table = new KernelRoutes(() => readKernelRoutes(inNetns(`pw-krnone-${process.pid}`)), { error: (m) => errors.push(m), info: () => {}, retry: () => {} });
  try {
    assert.equal(await table.refresh(), []);
    assert.match(errors[0] ?? '', /no table read yet: every other node is taken as on-link until one is; trying again in 1 s/);
    assert.is(table.status().readAt, null);
  } finally {
    table.stop();
  }
});

test('a kernel without IPv6 (its IPv6 read refused as an unsupported family): IPv4\'s table still read, no IPv6 routes; any other IPv6 failure fails the read', async () => {
  // `ip` as such a kernel answers: IPv4 from a real namespace's table, IPv6 refused
  const refuse6 = (said: string): ExecFn => async (file, args, timeoutMs) => (args.includes('-6')
    ? { code: 2, stdout: '', stderr: `${said}\n`, error: null }
    : { code: 0, stdout: JSON.stringify([{ dst: 'default', gateway: '10.77.0.254', dev: 'd0', flags: [] }, { dst: '10.77.0.0/24', dev: 'd0', protocol: 'kernel', scope: 'link', prefsrc: '10.77.0.1', flags: [] }]), stderr: '', error: null });
  const table = await readKernelRoutes(refuse6('RTNETLINK answers: Address family not supported by protocol'));
  assert.is(table.filter(isRoute6).length, 0);
  assert.equal(hops(table, ['10.77.0.9', '10.88.0.2']), { '10.77.0.9': '10.77.0.9', '10.88.0.2': '10.77.0.254' });
  const why = await readKernelRoutes(refuse6('Cannot open netlink socket: Permission denied')).then(() => 'read', (e: Error) => e.message);
  assert.match(why, /^ip -j -6 route show table main exited 2: Cannot open netlink socket: Permission denied$/);
});

test.run();
