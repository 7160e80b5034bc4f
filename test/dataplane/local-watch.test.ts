// The node's own addresses learned from the kernel's change notices (src/dataplane/local-watch.ts):
// a real `ip -o monitor address route`, run through the spawner's helper as the engine runs it, in
// a network namespace of this test's own (ip -n): an address added to lo asks for one read of the
// local table, a route of another table does not, a monitor killed from outside is started again
// (and asks for a read), one that cannot run is retried and says so, and stop() ends it by PID.
// Route lines: mainRoute4/mainRoute6 take the main table's routes of their family, a `default`
// without a gateway too (the kernel's own lines for both, from a real monitor).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { LocalTableWatch, LOCAL_WATCH_ARGS, concernsLocal, linkLine, mainRoute4, mainRoute6 } from '../../src/dataplane/local-watch';
import { Spawner } from '../../src/dataplane/spawner';
import { processGone } from '../helpers/proc';
import { addNetns } from '../helpers/netns';
import { until } from '../helpers/until';

test('concernsLocal: address lines and the local table\'s routes (as iproute2 6.1 prints them), not other tables\' routes', () => {
  for (const l of [
    '1: lo    inet 192.0.2.77/32 scope global lo\\       valid_lft forever preferred_lft forever',
    'Deleted 1: lo    inet6 fd00:77::1/128 scope global \\       valid_lft forever preferred_lft forever',
    'local 192.0.2.77 dev lo table local proto kernel scope host src 192.0.2.77 ',
    'Deleted local fd00:77::1 dev lo table local proto kernel metric 0 pref medium',
    'broadcast 10.9.0.255 dev lo table local proto kernel scope link src 10.9.0.1',
  ]) assert.ok(concernsLocal(l), l);
  for (const l of [
    'fd00:77::1 dev lo proto kernel metric 256 pref medium',
    '10.244.1.0/26 via 192.0.2.2 dev eth0 proto bird onlink',
    'Deleted 10.244.0.5 dev cali1234 scope link',
    '3: eth0    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff',
    '',
  ]) assert.not.ok(concernsLocal(l), l);
});

test('mainRoute4: the destination of a main-table IPv4 route line (as iproute2 6.1 prints them), null for anything else', () => {
  const ip = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  assert.equal(mainRoute4('10.99.0.2 via 10.99.0.254 dev eth0 proto bird metric 32 '), { addr: ip(10, 99, 0, 2), len: 32 });
  assert.equal(mainRoute4('Deleted 10.99.0.2 via 10.99.0.254 dev eth0 proto bird metric 32 '), { addr: ip(10, 99, 0, 2), len: 32 });
  assert.equal(mainRoute4('default via 10.99.0.254 dev eth0 '), { addr: 0, len: 0 });
  assert.equal(mainRoute4('unreachable 10.97.0.0/16 '), { addr: ip(10, 97, 0, 0), len: 16 });
  assert.equal(mainRoute4('10.96.0.0/16 \\\tnexthop via 10.99.0.253 dev d0 weight 1 \\\tnexthop via 10.99.0.254 dev d0 weight 1 '), { addr: ip(10, 96, 0, 0), len: 16 });
  assert.equal(mainRoute4('10.95.0.0/16 dev eth0 table main scope link'), { addr: ip(10, 95, 0, 0), len: 16 });
  for (const l of [
    '10.98.0.0/16 via 10.99.0.253 dev d0 table 100 ',
    'local 192.0.2.77 dev lo table local proto kernel scope host src 192.0.2.77 ',
    'broadcast 10.9.0.255 dev lo table local proto kernel scope link src 10.9.0.1',
    'fd00::/64 dev d0 metric 1024 pref medium',
    '2: d1    inet 10.99.0.1/24 scope global d1',
    '10.300.0.0/16 dev eth0',
    '',
  ]) assert.is(mainRoute4(l), null, l);
});

test('mainRoute6: the destination of a main-table IPv6 route line, null for IPv4 lines, other tables and a default naming no IPv6 address', () => {
  assert.equal(mainRoute6('fd98::/64 via fd99::fe dev eth0 metric 1024 pref medium'), { w: [0xfd980000, 0, 0, 0], len: 64 });
  assert.equal(mainRoute6('Deleted unreachable fd97::/48 dev lo metric 1024 pref medium'), { w: [0xfd970000, 0, 0, 0], len: 48 });
  assert.equal(mainRoute6('default via fe80::1 dev eth0 proto ra metric 1024 pref medium'), { w: [0, 0, 0, 0], len: 0 });
  assert.equal(mainRoute6('fd96::2 dev eth0 table main metric 1024'), { w: [0xfd960000, 0, 0, 2], len: 128 });
  for (const l of ['default via 10.99.0.254 dev eth0 ', '10.99.0.2 via 10.99.0.254 dev eth0', 'fd95::/64 dev d0 table 100', 'fd94::/129 dev d0', '']) assert.is(mainRoute6(l), null, l);
});

test('a default route line is one family\'s: an IPv6 one without a gateway (pref, which only IPv6 routes carry) is mainRoute6\'s, not mainRoute4\'s; an IPv4 one with an IPv6 gateway (via inet6) is IPv4\'s', () => {
  const any6 = { w: [0, 0, 0, 0], len: 0 };
  for (const l of [
    'default dev eth0 metric 1024 pref medium',
    'Deleted default dev eth0 metric 1024 pref medium',
    'unreachable default dev lo metric 1024 pref medium',
    'default via fd99::fe dev eth0 metric 1024 pref medium',
    'default proto ra metric 1024 expires 1798sec pref medium \tnexthop via fe80::1 dev eth0 weight 1 \tnexthop via fe80::2 dev eth0 weight 1 ',
  ]) {
    assert.equal(mainRoute6(l), any6, l);
    assert.is(mainRoute4(l), null, l);
  }
  for (const l of ['default dev eth0 scope link ', 'Deleted default dev eth0 scope link ', 'default via 10.99.0.254 dev eth0 proto dhcp src 10.99.0.1 metric 100 ', 'default via inet6 fe80::1 dev eth0 ']) {
    assert.equal(mainRoute4(l), { addr: 0, len: 0 }, l);
    assert.is(mainRoute6(l), null, l);
  }
});

test('a real ip monitor: the kernel\'s lines for default routes without a gateway, IPv6 then IPv4, are told apart (mainRoute6, mainRoute4), so an IPv6-only node\'s watch sees its default route change', async () => {
  const ns = `pwlwd${process.pid}`;
  const ip = (...a: string[]) => execFileSync('ip', ['-n', ns, ...a], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  const sp = new Spawner();
  const logs: string[] = [];
  const lines: string[] = [];
  let changes = 0;
  const w = new LocalTableWatch({
    spawn: sp.spawn,
    args: ['-n', ns, ...LOCAL_WATCH_ARGS],
    onChange: () => undefined,
    // as the engine's routeCoversNode on an IPv6-only node: an IPv6 route covering fd00:88::2
    routeConcerns: (l) => {
      if (/^(Deleted )?default /.test(l)) lines.push(l);
      const d = mainRoute6(l);
      return d !== null && d.len === 0;
    },
    onRouteChange: () => changes++,
    log: (level, m) => logs.push(`${level} ${m}`),
    debounceMs: 50,
    restartMinMs: 100,
  });
  const dropNs = addNetns(ns);
  try {
    ip('link', 'set', 'lo', 'up');
    ip('link', 'add', 'dd0', 'type', 'veth', 'peer', 'name', 'dd1');
    ip('link', 'set', 'dd0', 'up');
    ip('link', 'set', 'dd1', 'up');
    w.start();
    // one change at the start (whatever changed before it subscribed)
    assert.ok(await until(() => w.live && changes === 1, 20_000), `started: ${logs.join(' | ')}`);
    // the monitor subscribes a moment after it starts: add and delete until one is seen (bounded)
    let n = 0;
    assert.ok(await until(() => {
      if (lines.length > 0) return true;
      if (n < 40 && Date.now() % 500 < 30) {
        n++;
        ip('-6', 'route', 'replace', 'default', 'dev', 'dd0');
        ip('-6', 'route', 'del', 'default', 'dev', 'dd0');
      }
      return false;
    }, 20_000, 25), 'an IPv6 default route line seen');
    await new Promise((r) => setTimeout(r, 300));
    lines.length = 0;
    const before = changes;
    ip('-6', 'route', 'add', 'default', 'dev', 'dd0');
    assert.ok(await until(() => changes > before, 10_000), `the IPv6 default without a gateway asks for a read: ${JSON.stringify(lines)}`);
    ip('-6', 'route', 'del', 'default', 'dev', 'dd0');
    assert.ok(await until(() => lines.some((l) => l.startsWith('Deleted ')), 10_000), JSON.stringify(lines));
    for (const l of lines) {
      assert.equal(mainRoute6(l), { w: [0, 0, 0, 0], len: 0 }, l);
      assert.is(mainRoute4(l), null, l);
    }
    // IPv4's default without a gateway: IPv4's, asks for nothing here
    await new Promise((r) => setTimeout(r, 300));
    lines.length = 0;
    const settled = changes;
    ip('route', 'add', 'default', 'dev', 'dd0');
    ip('route', 'del', 'default', 'dev', 'dd0');
    assert.ok(await until(() => lines.length >= 2, 10_000), JSON.stringify(lines));
    await new Promise((r) => setTimeout(r, 300));
    assert.is(changes, settled, `IPv4 lines ${JSON.stringify(lines)}`);
    for (const l of lines) {
      assert.equal(mainRoute4(l), { addr: 0, len: 0 }, l);
      assert.is(mainRoute6(l), null, l);
    }
  } finally {
    const helper = (sp as unknown as { helper: { pid: number } | null }).helper?.pid;
    w.stop();
    sp.close();
    if (helper !== undefined) await until(() => processGone(helper), 5000);
    dropNs();
  }
});

test('linkLine: a link line\'s name and MTU (as iproute2 6.1 prints them, `ip -o monitor link`), null for address and route lines; those are not link lines to concernsLocal, mainRoute4 or mainRoute6', () => {
  const lines = [
    '3: veth0@veth1: <BROADCAST,MULTICAST,M-DOWN> mtu 1300 qdisc noop state DOWN group default \\    link/ether 3e:fc:ed:50:f5:f4 brd ff:ff:ff:ff:ff:ff',
    '2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc noqueue state UP group default \\    link/ether 3e:fc:ed:50:f5:f4 brd ff:ff:ff:ff:ff:ff link-netns pw-fab',
    'Deleted 9: podway0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UNKNOWN group default qlen 500 \\    link/none ',
  ];
  assert.equal(linkLine(lines[0]), { name: 'veth0', mtu: 1300, deleted: false });
  assert.equal(linkLine(lines[1]), { name: 'eth0', mtu: 1400, deleted: false });
  assert.equal(linkLine(lines[2]), { name: 'podway0', mtu: 1500, deleted: true });
  for (const l of lines) {
    assert.not.ok(concernsLocal(l), l);
    assert.is(mainRoute4(l), null, l);
    assert.is(mainRoute6(l), null, l);
  }
  for (const l of ['2: eth0    inet 10.99.0.1/24 brd 10.99.0.255 scope global eth0\\       valid_lft forever preferred_lft forever', '10.99.0.0/24 dev eth0 proto kernel scope link src 10.99.0.1 mtu 1400', '']) assert.is(linkLine(l), null, l);
});

test('a real ip monitor in a namespace: an address added to lo asks for a read (debounced), another table\'s route does not; killed from outside it is started again; stop() ends it by PID', async () => {
  const ns = `pwlw${process.pid}`;
  const ip = (...a: string[]) => execFileSync('ip', ['-n', ns, ...a], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  const sp = new Spawner();
  const logs: string[] = [];
  let reads = 0;
  const w = new LocalTableWatch({
    spawn: sp.spawn,
    args: ['-n', ns, ...LOCAL_WATCH_ARGS],
    onChange: () => reads++,
    log: (level, m) => logs.push(`${level} ${m}`),
    debounceMs: 100,
    restartMinMs: 100,
  });
  const dropNs = addNetns(ns);
  try {
    ip('link', 'set', 'lo', 'up');
    w.start();
    assert.ok(await until(() => w.live && reads === 1, 20_000), `started, one read for what changed before: ${logs.join(' | ')}`);
    const pid1 = (w as unknown as { pid: number }).pid;
    assert.ok(existsSync(`/proc/${pid1}`), 'its PID is a live process');
    // the monitor subscribes a moment after it starts: an address until one is noticed (bounded)
    let n = 0;
    assert.ok(await until(() => {
      if (reads > 1) return true;
      if (n < 40 && Date.now() % 500 < 30) ip('addr', 'add', `192.0.2.${++n}/32`, 'dev', 'lo');
      return false;
    }, 20_000, 25), 'an address added to lo asks for a read'); // every 25 ms: each 30 ms slot of 500 met
    await new Promise((r) => setTimeout(r, 400));
    const settled = reads;
    // a burst (an address, an IPv6 address, an AnyIP route) gives one read or few, not one per line
    ip('addr', 'add', '198.18.0.1/24', 'dev', 'lo');
    ip('-6', 'addr', 'add', 'fd00:77::1/128', 'dev', 'lo', 'nodad');
    ip('route', 'add', 'local', '203.0.113.0/28', 'dev', 'lo', 'table', 'local');
    assert.ok(await until(() => reads > settled, 10_000), 'the burst asks for a read');
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(reads - settled <= 2, `debounced: ${reads - settled} reads for the burst`);
    const before = reads;
    ip('route', 'add', '198.51.100.0/24', 'dev', 'lo');
    ip('route', 'del', '198.51.100.0/24', 'dev', 'lo');
    await new Promise((r) => setTimeout(r, 800));
    assert.is(reads, before, 'a main-table route asks for nothing');
    // killed from outside: said, started again (a new PID), and one read follows (its last stderr
    // line may come with it: another test deleting its namespace meanwhile makes ip monitor print
    // 'Error: Peer netns reference is invalid.', seen with two test files at once)
    process.kill(pid1, 'SIGKILL');
    assert.ok(await until(() => logs.some((l) => /^warn .*ip monitor exited \(SIGKILL\)(: [^;]*)?; the local table is read every 5 s/.test(l)), 10_000), logs.join(' | '));
    assert.ok(await until(() => w.live && (w as unknown as { pid: number }).pid !== pid1 && reads > before, 20_000), 'started again, with a read');
    assert.is(w.starts, 2);
    const pid2 = (w as unknown as { pid: number }).pid;
    w.stop();
    assert.ok(await until(() => processGone(pid2), 10_000), 'stop() ended it');
    assert.not.ok(w.live);
  } finally {
    const helper = (sp as unknown as { helper: { pid: number } | null }).helper?.pid;
    w.stop();
    sp.close();
    if (helper !== undefined) await until(() => processGone(helper), 5000);
    dropNs();
  }
});

test('an ip monitor that cannot run is said to, retried with a growing pause, and never reads by itself', async () => {
  const sp = new Spawner();
  const logs: string[] = [];
  let reads = 0;
  const w = new LocalTableWatch({ spawn: sp.spawn, args: ['-o', 'monitor', 'no-such-object'], onChange: () => reads++, log: (level, m) => logs.push(`${level} ${m}`), restartMinMs: 100, restartMaxMs: 400 });
  try {
    w.start();
    assert.ok(await until(() => logs.filter((l) => l.startsWith('warn ')).length >= 3, 20_000), logs.join(' | '));
    assert.match(logs.find((l) => l.startsWith('warn '))!, /ip monitor exited \(code \d+\).*read every 5 s until it runs again \(started again in 0\.1 s\)/);
    assert.match(logs.filter((l) => l.startsWith('warn '))[1], /started again in 0\.2 s/);
    assert.not.ok(w.live);
  } finally {
    const helper = (sp as unknown as { helper: { pid: number } | null }).helper?.pid;
    w.stop();
    sp.close();
    if (helper !== undefined) await until(() => processGone(helper), 5000);
  }
});

test.run();
