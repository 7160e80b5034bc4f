/**
 * HostProgrammer against a real kernel: every test programs a network namespace of its own
 * (`ip -n NAME`), never the host's tables, and reads the result back with `ip -j`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { HostProgrammer, HostPodRoutes, HostState, parseBatchOutcome } from '../../src/dataplane/host-programmer';
import { formatIpv4, parseIpv4 } from '../../src/packet';
import { Netns, sh, waitFor, withNetns } from '../helpers/netns';

const hex = (n: number) => (n & 255).toString(16).padStart(2, '0');

/** Pod i: interface hp<i>, address 10.77.<salt>.<i + 1>, a MAC made of salt and i. */
function pod(i: number, salt = 0): HostPodRoutes {
  return { ifname: `hp${i}`, ips: [parseIpv4(`10.77.${salt}.${i + 1}`)], mac: `02:00:00:${hex(salt)}:${hex(i >> 8)}:${hex(i)}` };
}

function state(pods: HostPodRoutes[], pools: HostState['pools'] = [], mtus: HostState['mtus'] = []): HostState {
  return { pods, pools, mtus };
}

/** Veth pairs (hp<i> with peer hq<i>, other names with peer <name>p), both ends up, made by one
 * `ip -batch`. */
function makeVeths(ns: Netns, names: string[]): void {
  const peer = (n: string) => (n.startsWith('hp') ? `hq${n.slice(2)}` : `${n}p`);
  const lines = names.flatMap((n) => [`link add ${n} type veth peer name ${peer(n)}`, `link set ${n} up`, `link set ${peer(n)} up`]);
  execFileSync('ip', ['-n', ns.name, '-batch', '-'], { input: lines.join('\n') + '\n', stdio: ['pipe', 'ignore', 'pipe'], timeout: 20_000 });
}

/** The namespace's IPv4 routes and permanent neighbours, as comparable text. */
function tables(ns: Netns): { routes: string[]; neigh: string[] } {
  const routes = JSON.parse(ns.ip('-4', '-j', 'route', 'show', 'table', 'main')) as { dst: string; dev: string; scope?: string }[];
  const neigh = JSON.parse(ns.ip('-4', '-j', 'neigh', 'show', 'nud', 'permanent')) as { dst: string; dev: string; lladdr?: string }[];
  return {
    routes: routes.map((r) => `${r.dst.includes('/') ? r.dst : `${r.dst}/32`} dev ${r.dev} scope ${r.scope ?? 'global'}`).sort(),
    neigh: neigh.map((n) => `${n.dst} dev ${n.dev} lladdr ${n.lladdr}`).sort(),
  };
}

function expected(s: HostState): { routes: string[]; neigh: string[] } {
  const routes = s.pools.map((p) => `${p.cidr} dev ${p.dev} scope link`);
  const neigh: string[] = [];
  for (const p of s.pods) {
    for (const ip of p.ips) {
      routes.push(`${formatIpv4(ip)}/32 dev ${p.ifname} scope link`);
      if (p.mac) neigh.push(`${formatIpv4(ip)} dev ${p.ifname} lladdr ${p.mac}`);
    }
  }
  return { routes: routes.sort(), neigh: neigh.sort() };
}

function range(n: number): number[] {
  return [...Array(n).keys()];
}

/** A programmer for a test namespace; its log lines are kept for assertions. */
function programmer(ns: Netns | null, opts: { timeoutMs?: number } = {}): { hp: HostProgrammer; logs: string[] } {
  const logs: string[] = [];
  const hp = new HostProgrammer({ netns: ns?.name ?? null, log: (m) => logs.push(m), retryMs: 0, timeoutMs: opts.timeoutMs });
  return { hp, logs };
}

test('50 pods programmed by diff: one pod changing address and MAC runs exactly its commands', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, [...range(50).map((i) => `hp${i}`), 'podway0']);
    const { hp, logs } = programmer(ns);
    try {
      const pools = [{ cidr: '10.78.0.0/16', dev: 'podway0' }];
      const first = state(range(50).map((i) => pod(i)), pools);
      hp.sync(first);
      await hp.idle();
      let st = hp.status();
      assert.equal(logs, []);
      assert.is(st.failures, 0);
      assert.is(st.pendingItems, 0);
      assert.is(st.children, 1, 'one ip child for the whole state');
      assert.is(st.lastCommands.length, 50 + 50 + 1);
      assert.equal(tables(ns), expected(first));

      // Pod 7 gets a new address and a new MAC.
      const moved = pod(7, 1);
      const second = state(first.pods.map((p, i) => (i === 7 ? moved : p)), pools);
      hp.sync(second);
      await hp.idle();
      st = hp.status();
      assert.equal([...st.lastCommands].sort(), [
        'neigh flush to 10.77.0.8 dev hp7 nud permanent',
        'neigh replace 10.77.1.8 lladdr 02:00:00:01:00:07 dev hp7 nud permanent',
        'route del 10.77.0.8/32 dev hp7',
        'route replace 10.77.1.8/32 dev hp7 scope link',
      ]);
      // Removals run first: an address moving between interfaces is deleted before it is added.
      assert.ok(st.lastCommands.indexOf('route del 10.77.0.8/32 dev hp7') < st.lastCommands.indexOf('route replace 10.77.1.8/32 dev hp7 scope link'));
      assert.is(st.children, 2);
      assert.equal(tables(ns), expected(second));

      // A MAC-only change is one neighbour replace; a pool moving to another device one route replace.
      const third = state(second.pods.map((p, i) => (i === 8 ? { ...p, mac: '02:00:00:aa:bb:cc' } : p)), [{ cidr: '10.78.0.0/16', dev: 'hp49' }]);
      hp.sync(third);
      await hp.idle();
      assert.equal([...hp.status().lastCommands].sort(), ['neigh replace 10.77.0.9 lladdr 02:00:00:aa:bb:cc dev hp8 nud permanent', 'route replace 10.78.0.0/16 dev hp49 scope link']);
      assert.equal(tables(ns), expected(third));

      // The same state again: nothing to do, no child at all.
      hp.sync(third);
      await hp.idle();
      assert.is(hp.status().children, 3);
      assert.equal(hp.status().lastCommands, []);
      assert.is(hp.status().failures, 0);
      assert.equal(logs, []);
    } finally {
      await hp.stop();
    }
  });
});

/** The namespace's IPv6 routes (the kernel's own fe80::/64s and multicast left out) and permanent neighbours. */
function tables6(ns: Netns): { routes: string[]; neigh: string[] } {
  const routes = JSON.parse(ns.ip('-6', '-j', 'route', 'show', 'table', 'main')) as { dst: string; dev: string; gateway?: string; protocol?: string }[];
  const neigh = JSON.parse(ns.ip('-6', '-j', 'neigh', 'show', 'nud', 'permanent')) as { dst: string; dev: string; lladdr?: string }[];
  return {
    routes: routes.filter((r) => r.protocol !== 'kernel').map((r) => `${r.dst.includes('/') ? r.dst : `${r.dst}/128`} dev ${r.dev}${r.gateway ? ` via ${r.gateway}` : ''}`).sort(),
    neigh: neigh.map((n) => `${n.dst} dev ${n.dev} lladdr ${n.lladdr}`).sort(),
  };
}

test('IPv6: a /128 and a permanent neighbour per veth pod address, the IPv6 pool into the host port; by diff, in canonical text; removed with the pod; adopted after a restart', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, [...range(3).map((i) => `hp${i}`), 'podway0']);
    const { hp, logs } = programmer(ns);
    const v6 = (i: number, ips6: string[]): HostPodRoutes => ({ ...pod(i), ips6 });
    try {
      // Written in any valid form (upper case, zeros, host bits in the pool): keyed and written canonically.
      const first = state([v6(0, ['FD00:77:0:0::1']), v6(1, ['fd00:77::2']), { ...v6(2, ['fd00:77::3']), mac: null }], [{ cidr: '10.78.0.0/16', dev: 'podway0' }, { cidr: 'fd00:78::5/48', dev: 'podway0' }]);
      hp.sync(first);
      await hp.idle();
      assert.equal(logs, []);
      assert.is(hp.status().failures, 0);
      assert.equal(tables6(ns), {
        routes: ['fd00:77::1/128 dev hp0', 'fd00:77::2/128 dev hp1', 'fd00:77::3/128 dev hp2', 'fd00:78::/48 dev podway0'],
        neigh: ['fd00:77::1 dev hp0 lladdr 02:00:00:00:00:00', 'fd00:77::2 dev hp1 lladdr 02:00:00:00:00:01'],
      });
      assert.ok(hp.status().lastCommands.includes('route replace fd00:78::/48 dev podway0'), hp.status().lastCommands.join('\n'));
      // IPv4 beside it is unchanged
      assert.equal(tables(ns), expected(state([...first.pods], [{ cidr: '10.78.0.0/16', dev: 'podway0' }])));

      // The same addresses in another form: nothing to do. Pod 1's IPv6 address moves, pod 0 goes.
      hp.sync(state([v6(1, ['fd00:77:0::9']), { ...v6(2, ['fd00:0077::3']), mac: null }], [{ cidr: '10.78.0.0/16', dev: 'podway0' }, { cidr: 'fd00:78::/48', dev: 'podway0' }]));
      await hp.idle();
      assert.equal([...hp.status().lastCommands].sort(), [
        'neigh flush to 10.77.0.1 dev hp0 nud permanent',
        'neigh flush to fd00:77::1 dev hp0 nud permanent',
        'neigh flush to fd00:77::2 dev hp1 nud permanent',
        'neigh replace fd00:77::9 lladdr 02:00:00:00:00:01 dev hp1 nud permanent',
        'route del 10.77.0.1/32 dev hp0',
        'route del fd00:77::1/128 dev hp0',
        'route del fd00:77::2/128 dev hp1',
        'route replace fd00:77::9/128 dev hp1',
      ]);
      assert.equal(tables6(ns), { routes: ['fd00:77::3/128 dev hp2', 'fd00:77::9/128 dev hp1', 'fd00:78::/48 dev podway0'], neigh: ['fd00:77::9 dev hp1 lladdr 02:00:00:00:00:01'] });

      // A bad address never reaches ip: refused, logged, the rest programmed.
      hp.sync(state([v6(1, ['fd00:77::9', 'fd00::1 dev lo']), { ...v6(2, ['fd00:77::3']), mac: null }], [{ cidr: '10.78.0.0/16', dev: 'podway0' }, { cidr: 'fd00:78::/48', dev: 'podway0' }, { cidr: 'fd00:79::/200', dev: 'podway0' }]));
      await hp.idle();
      assert.ok(logs.some((l) => /hp1: bad IPv6 address "fd00::1 dev lo"/.test(l)), logs.join('\n'));
      assert.ok(logs.some((l) => /pool route "fd00:79::\/200" .*bad CIDR/.test(l)), logs.join('\n'));
      assert.equal(hp.status().lastCommands, []);
    } finally {
      await hp.stop();
    }

    // A new programmer (a restart) adopts what it finds; a state without pod 2 removes its /128.
    const next = programmer(ns);
    try {
      next.hp.adopt([{ ifname: 'hp1', ip6: 'fd00:77::9', mac: '02:00:00:00:00:01' }, { ifname: 'hp2', ip6: 'fd00:77::3', mac: null }]);
      next.hp.sync(state([v6(1, ['fd00:77::9'])], [{ cidr: 'fd00:78::/48', dev: 'podway0' }]));
      await next.hp.idle();
      assert.equal([...next.hp.status().lastCommands].sort(), ['route del fd00:77::3/128 dev hp2', 'route replace 10.77.0.2/32 dev hp1 scope link', 'route replace fd00:78::/48 dev podway0', 'neigh replace 10.77.0.2 lladdr 02:00:00:00:00:01 dev hp1 nud permanent'].sort());
      assert.equal(tables6(ns).routes, ['fd00:77::9/128 dev hp1', 'fd00:78::/48 dev podway0']);
      assert.equal(next.logs, []);
    } finally {
      await next.hp.stop();
    }
  });
});

test('tunnel addresses on the host port, and the pools routed from them: an address comes before the routes naming it, a changed one is replaced route first, a removed one after', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, ['podway0']);
    const { hp, logs } = programmer(ns);
    const addrs = () => (JSON.parse(ns.ip('-j', 'addr', 'show', 'dev', 'podway0')) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[])[0].addr_info
      .filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).sort();
    const route = (cidr: string) => (JSON.parse(ns.ip(cidr.includes(':') ? '-6' : '-4', '-j', 'route', 'show', cidr)) as { dev: string; prefsrc?: string }[]).map((r) => `${r.dev} ${r.prefsrc ?? '-'}`);
    try {
      // VXLAN: both families' addresses, each pool from its own
      hp.sync({ pods: [], mtus: [], pools: [{ cidr: '10.78.0.0/16', dev: 'podway0', src: '10.78.0.1' }, { cidr: 'fd00:78::/48', dev: 'podway0', src: 'fd00:78::1' }], addrs: [{ addr: '10.78.0.1', dev: 'podway0' }, { addr: 'fd00:78::1', dev: 'podway0' }] });
      await hp.idle();
      assert.equal(logs, []);
      assert.is(hp.status().failures, 0);
      assert.equal(addrs(), ['10.78.0.1/32', 'fd00:78::1/128']);
      assert.equal(route('10.78.0.0/16'), ['podway0 10.78.0.1']);
      assert.equal(route('fd00:78::/48'), ['podway0 fd00:78::1']);
      assert.equal(hp.status().lastCommands.slice(0, 2).sort(), ['addr replace 10.78.0.1/32 dev podway0', 'addr replace fd00:78::1/128 dev podway0 nodad'], 'the addresses first');

      // IPIP: another IPv4 address, the IPv6 one gone with its source; the kernel drops the routes
      // whose source an address was, so the pool routes are written after the removals
      hp.sync({ pods: [], mtus: [], pools: [{ cidr: '10.78.0.0/16', dev: 'podway0', src: '10.78.0.9' }, { cidr: 'fd00:78::/48', dev: 'podway0' }], addrs: [{ addr: '10.78.0.9', dev: 'podway0' }] });
      await hp.idle();
      assert.equal(logs, []);
      assert.equal(hp.status().lastCommands, [
        'addr replace 10.78.0.9/32 dev podway0',
        'addr del 10.78.0.1/32 dev podway0',
        'addr del fd00:78::1/128 dev podway0',
        'route replace 10.78.0.0/16 dev podway0 scope link src 10.78.0.9',
        'route replace fd00:78::/48 dev podway0',
      ]);
      assert.equal(addrs(), ['10.78.0.9/32']);
      assert.equal(route('10.78.0.0/16'), ['podway0 10.78.0.9']);
      assert.equal(route('fd00:78::/48'), ['podway0 -']);

      // No tunnel address: the route without a source, as before; a bad address never reaches ip.
      // The device's last IPv4 address going takes every IPv4 route through it (the kernel's
      // fib_disable_ip): the pool routes are written again after it, an unchanged one too.
      hp.sync({ pods: [], mtus: [], pools: [{ cidr: '10.78.0.0/16', dev: 'podway0' }, { cidr: '10.79.0.0/16', dev: 'podway0' }], addrs: [{ addr: '10.78.0.9', dev: 'podway0' }] });
      await hp.idle();
      assert.equal(route('10.79.0.0/16'), ['podway0 -']);
      hp.sync({ pods: [], mtus: [], pools: [{ cidr: '10.78.0.0/16', dev: 'podway0' }, { cidr: '10.79.0.0/16', dev: 'podway0' }], addrs: [{ addr: '10.78.0.1 dev lo', dev: 'podway0' }] });
      await hp.idle();
      assert.equal(route('10.79.0.0/16'), ['podway0 -'], 'the unchanged pool route is back');
      assert.ok(logs.some((l) => /address "10.78.0.1 dev lo" on podway0: bad IPv4 address/.test(l)), logs.join('\n'));
      assert.equal(addrs(), []);
      assert.equal(route('10.78.0.0/16'), ['podway0 -']);
    } finally {
      await hp.stop();
    }
  });
});

test('a pod whose interface was deleted meanwhile is removed without a failure', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, range(5).map((i) => `hp${i}`));
    const { hp, logs } = programmer(ns);
    try {
      const all = state(range(5).map((i) => pod(i)));
      hp.sync(all);
      await hp.idle();
      assert.equal(tables(ns), expected(all));
      ns.ip('link', 'del', 'hp3'); // takes its route and neighbour with it
      const rest = state(all.pods.filter((p) => p.ifname !== 'hp3'));
      hp.sync(rest);
      await hp.idle();
      const st = hp.status();
      assert.equal([...st.lastCommands].sort(), ['neigh flush to 10.77.0.4 dev hp3 nud permanent', 'route del 10.77.0.4/32 dev hp3']);
      assert.is(st.failures, 0);
      assert.is(st.pendingItems, 0);
      assert.is(st.lastError, null);
      assert.equal(logs, []);
      assert.equal(tables(ns), expected(rest));
    } finally {
      await hp.stop();
    }
  });
});

test('a route to a missing device fails with its interface and address, is retried, and converges', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, range(3).map((i) => `hp${i}`));
    const { hp, logs } = programmer(ns);
    try {
      const missing: HostPodRoutes = { ifname: 'hpmissing', ips: [parseIpv4('10.77.9.9')], mac: '02:00:00:09:09:09' };
      const s = state([...range(3).map((i) => pod(i)), missing]);
      hp.sync(s);
      await hp.idle();
      let st = hp.status();
      assert.is(st.failures, 2, 'its route and its neighbour');
      assert.is(st.pendingItems, 2);
      assert.is(logs.length, 2);
      for (const l of logs) assert.ok(l.includes('hpmissing') && l.includes('10.77.9.9') && l.includes('Cannot find device'), l);
      assert.ok(st.lastError?.includes('hpmissing'));
      // The other pods are programmed all the same.
      assert.equal(tables(ns), expected(state(s.pods.slice(0, 3))));

      // The next sync (same state) retries exactly the failed items; the failure is not logged again.
      hp.sync(s);
      await hp.idle();
      st = hp.status();
      assert.equal([...st.lastCommands].sort(), ['neigh replace 10.77.9.9 lladdr 02:00:00:09:09:09 dev hpmissing nud permanent', 'route replace 10.77.9.9/32 dev hpmissing scope link']);
      assert.is(st.failures, 4);
      assert.is(logs.length, 2);

      makeVeths(ns, ['hpmissing']);
      hp.sync(s);
      await hp.idle();
      st = hp.status();
      assert.is(st.failures, 4);
      assert.is(st.pendingItems, 0);
      assert.equal(tables(ns), expected(s));
    } finally {
      await hp.stop();
    }
  });
});

test('a learned route already in the kernel exactly as we write it (an add whose result was lost) is taken as ours, not retried; an operator\'s route at the prefix is not', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, ['hl0']);
    ns.ip('addr', 'add', '10.79.0.1/24', 'dev', 'hl0');
    const ours = '198.51.100.0/24 via 10.79.0.254 dev hl0 proto bird metric 32';
    const operators = '203.0.113.0/24 via 10.79.0.254 dev hl0 proto static metric 32';
    // What a lost add leaves: our route in the kernel, and the programmer not knowing it.
    ns.ip('route', 'add', ...ours.split(' '));
    ns.ip('route', 'add', ...operators.split(' '));
    const show = (cidr: string) => ns.ip('-4', 'route', 'show', 'table', 'main', cidr).trim();
    const { hp, logs } = programmer(ns);
    try {
      const learned = [
        { cidr: '198.51.100.0/24', via: '10.79.0.254', dev: 'hl0' },
        { cidr: '203.0.113.0/24', via: '10.79.0.254', dev: 'hl0' },
      ];
      hp.sync({ pods: [], pools: [], mtus: [], learned });
      await hp.idle();
      let st = hp.status();
      assert.is(st.adopted, 1, 'ours adopted');
      assert.is(st.pendingItems, 1, 'only the operator\'s prefix is left to retry');
      assert.is(logs.length, 1, logs.join('\n'));
      assert.ok(logs[0].includes('203.0.113.0/24') && logs[0].includes('File exists'), logs[0]);
      assert.is(show('198.51.100.0/24'), ours, 'one route, not duplicated');
      assert.is(show('203.0.113.0/24'), operators);

      // The same state again: only the operator's prefix is tried; ours is not touched.
      hp.sync({ pods: [], pools: [], mtus: [], learned });
      await hp.idle();
      st = hp.status();
      assert.equal(st.lastCommands, ['route add 203.0.113.0/24 via 10.79.0.254 dev hl0 proto bird metric 32']);
      assert.is(st.adopted, 1);
      assert.is(logs.length, 1, 'the repeated failure is not logged again');

      // Ours is ours: withdrawn, it is removed; the operator's route stays.
      hp.sync({ pods: [], pools: [], mtus: [], learned: [] });
      await hp.idle();
      assert.is(hp.status().pendingItems, 0);
      assert.is(show('198.51.100.0/24'), '');
      assert.is(show('203.0.113.0/24'), operators);
    } finally {
      await hp.stop();
    }
  });
});

test('IPv6 learned routes: written with proto bird metric 32 in canonical form, a lost add taken as ours, a bad or link-local next hop refused, an operator\'s route left alone', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, ['hl0']);
    ns.ip('-6', 'addr', 'add', 'fd79::1/64', 'dev', 'hl0', 'nodad');
    const show = (cidr: string) => ns.ip('-6', 'route', 'show', 'table', 'main', cidr).replace(/ pref medium/g, '').trim();
    // What a lost add leaves (ours), and an operator's route at our metric.
    const ours = 'fd00:77::/64 via fd79::fe dev hl0 proto bird metric 32';
    const operators = 'fd00:78::/64 via fd79::fe dev hl0 proto static metric 32';
    ns.ip('-6', 'route', 'add', ...ours.split(' '));
    ns.ip('-6', 'route', 'add', ...operators.split(' '));
    const { hp, logs } = programmer(ns);
    try {
      const learned = [
        { cidr: 'FD00:77:0::/64', via: 'FD79::FE', dev: 'hl0' }, // any valid text: the kernel's canonical form is the key
        { cidr: 'fd00:78::/64', via: 'fd79::fe', dev: 'hl0' },
        { cidr: '::/0', via: 'fd79::fe', dev: 'hl0' },
        { cidr: 'fd00:79::/64', via: 'fe80::1', dev: 'hl0' }, // link-local: refused
        { cidr: 'fd00:7a::/64', via: 'fd79::zz', dev: 'hl0' }, // not an address: refused
      ];
      hp.sync({ pods: [], pools: [], mtus: [], learned });
      await hp.idle();
      const st = hp.status();
      assert.is(st.adopted, 1, 'ours adopted');
      assert.ok(st.lastCommands.includes('route add ::/0 via fd79::fe dev hl0 proto bird metric 32'), st.lastCommands.join('\n'));
      assert.is(show('fd00:77::/64'), ours, 'one route, not duplicated');
      assert.is(show('fd00:78::/64'), operators);
      assert.is(show('default'), 'default via fd79::fe dev hl0 proto bird metric 32');
      assert.is(show('fd00:79::/64') + show('fd00:7a::/64'), '');
      assert.ok(logs.some((l) => l.includes('fd00:78::/64') && l.includes('File exists')), logs.join('\n'));
      assert.ok(logs.some((l) => l.includes('"fd00:79::/64"') && l.includes('global IPv6')), logs.join('\n'));
      // Withdrawn: ours go, the operator's stays.
      hp.sync({ pods: [], pools: [], mtus: [], learned: [] });
      await hp.idle();
      assert.is(show('fd00:77::/64') + show('default'), '');
      assert.is(show('fd00:78::/64'), operators);
    } finally {
      await hp.stop();
    }
  });
});

test('a neighbour the kernel rejects ends ip\'s batch: it alone fails, the lines after it still run', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, range(10).map((i) => `hp${i}`));
    // Below 68 bytes the kernel drops lo's IPv4 state: a neighbour on it is refused (EINVAL), and
    // iproute2 exits on that instead of reporting the line (the marker command still works on lo).
    ns.ip('link', 'set', 'lo', 'mtu', '60');
    const { hp, logs } = programmer(ns);
    try {
      const bad: HostPodRoutes = { ifname: 'lo', ips: [parseIpv4('10.77.200.1')], mac: '02:00:00:c8:00:01' };
      const pods = range(10).map((i) => pod(i));
      const s = state([...pods.slice(0, 3), bad, ...pods.slice(3)]);
      hp.sync(s);
      await hp.idle();
      let st = hp.status();
      assert.is(st.aborts, 1);
      assert.is(st.children, 2, 'the lines after the rejected neighbour run in a second batch');
      assert.is(st.failures, 2, 'the route on lo (reported) and its neighbour (ended the batch)');
      assert.is(st.pendingItems, 2);
      assert.ok(logs.some((l) => l.includes('neigh replace 10.77.200.1') && l.includes('dev lo') && l.includes('Invalid argument')), logs.join('\n'));
      assert.equal(tables(ns), expected(state(pods)));

      // Next time the neighbour that ended a batch goes last: one child, nothing left behind it.
      hp.sync(s);
      await hp.idle();
      st = hp.status();
      assert.is(st.children, 3);
      assert.equal(st.lastCommands, ['route replace 10.77.200.1/32 dev lo scope link', 'neigh replace 10.77.200.1 lladdr 02:00:00:c8:00:01 dev lo nud permanent']);
      assert.is(st.pendingItems, 2);
    } finally {
      await hp.stop();
    }
  });
});

test('ten syncs fired while a child runs coalesce into one more run with the last state', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, range(30).map((i) => `hp${i}`));
    const { hp, logs } = programmer(ns);
    try {
      const states = range(10).map((k) => state(range(3 * (k + 1)).map((i) => pod(i, k % 3))));
      hp.sync(states[0]);
      // One turn of the loop later the first child is in flight; nine more syncs arrive meanwhile.
      await new Promise((r) => setImmediate(r));
      assert.ok(hp.status().running);
      for (const s of states.slice(1)) hp.sync(s);
      await hp.idle();
      const st = hp.status();
      assert.is(st.children, 2);
      assert.is(st.failures, 0);
      assert.equal(logs, []);
      assert.equal(tables(ns), expected(states[9]));

      // Ten back to back with nothing in flight: a single child.
      const more = range(10).map((k) => state(range(30 - k).map((i) => pod(i, 5))));
      for (const s of more) hp.sync(s);
      await hp.idle();
      assert.is(hp.status().children, 3);
      assert.equal(tables(ns), expected(more[9]));
    } finally {
      await hp.stop();
    }
  });
});

test('an interface forgotten while a child runs (its link went down and up meanwhile) is programmed again by one more run, not left to a retry', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, range(3).map((i) => `hp${i}`));
    const { hp, logs } = programmer(ns);
    try {
      const two = state(range(2).map((i) => pod(i)));
      hp.sync(two);
      await hp.idle();
      assert.equal(tables(ns), expected(two));
      // down and up: the kernel removed hp1's route (and keeps its permanent neighbour)
      ns.ip('link', 'set', 'hp1', 'down');
      ns.ip('link', 'set', 'hp1', 'up');
      assert.not.ok(tables(ns).routes.some((r) => r.includes('dev hp1')), 'route gone with the link');
      const three = state(range(3).map((i) => pod(i)));
      hp.sync(three);
      await new Promise((r) => setImmediate(r));
      assert.ok(hp.status().running, 'a child in flight');
      hp.forgetInterface('hp1');
      await hp.idle();
      assert.equal(tables(ns), expected(three), 'hp1 programmed again (retryMs 0: no retry would)');
      assert.is(hp.status().children, 3, 'the first state, the second, and one more run for hp1');
      assert.equal(logs, []);
    } finally {
      await hp.stop();
    }
  });
});

test('sync() returns before any ip child exists; the event loop runs while the child works', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, range(50).map((i) => `hp${i}`));
    const { hp } = programmer(ns);
    try {
      let idle = false;
      const s = state(range(50).map((i) => pod(i)));
      const returned = hp.sync(s);
      assert.is(returned, undefined);
      assert.is(hp.status().children, 0, 'sync() spawned nothing');
      void hp.idle().then(() => (idle = true));
      await Promise.resolve();
      assert.is(idle, false);
      // The run starts on the next turn; this callback is queued after it, so it sees the child in
      // flight: JavaScript runs on this thread while `ip` works.
      await new Promise((r) => setImmediate(r));
      const st = hp.status();
      assert.ok(st.running);
      assert.is(st.children, 1);
      assert.type(st.childPid, 'number');
      assert.is(idle, false);
      await hp.idle();
      assert.ok(idle);
      assert.is(hp.status().childPid, null);
      assert.equal(tables(ns), expected(s));
    } finally {
      await hp.stop();
    }
  });
});

test('MTUs of devices in other namespaces: /run/netns by name, any other path through nsenter', async () => {
  await withNetns(['hp', 'ta', 'tb'], async ([ns, ta, tb]) => {
    ta.ip('tuntap', 'add', 'mode', 'tun', 'name', 'tn0');
    tb.ip('tuntap', 'add', 'mode', 'tap', 'name', 'tp0');
    const viaNsenter = `/var/run/netns/${tb.name}`; // not /run/netns/...: exercises nsenter
    assert.ok(existsSync(viaNsenter), `${viaNsenter} (is /var/run a link to /run here?)`);
    const mtuOf = (n: Netns, dev: string) => (JSON.parse(n.ip('-j', 'link', 'show', 'dev', dev)) as { mtu: number }[])[0].mtu;
    const { hp, logs } = programmer(ns);
    try {
      hp.sync(state([], [], [{ ifname: 'tn0', netns: ta.path, mtu: 1400 }, { ifname: 'tp0', netns: viaNsenter, mtu: 1410 }]));
      await hp.idle();
      assert.equal(logs, []);
      assert.is(hp.status().children, 2, 'one batch per namespace');
      assert.is(mtuOf(ta, 'tn0'), 1400);
      assert.is(mtuOf(tb, 'tp0'), 1410);
      hp.sync(state([], [], [{ ifname: 'tn0', netns: ta.path, mtu: 1380 }, { ifname: 'tp0', netns: viaNsenter, mtu: 1410 }]));
      await hp.idle();
      assert.is(hp.status().children, 3);
      assert.equal(hp.status().lastCommands, ['link set dev tn0 mtu 1380']);
      assert.is(mtuOf(ta, 'tn0'), 1380);
      assert.is(hp.status().pendingItems, 0);
    } finally {
      await hp.stop();
    }
  });
});

test('a child that hangs is killed after the timeout and retried; stop() kills the one in flight', async () => {
  await withNetns(['hp'], async ([ns]) => {
    // nsenter blocks opening a FIFO as a namespace path (no writer ever comes): a real child that
    // never finishes.
    const dir = mkdtempSync(path.join(tmpdir(), 'podway-hp-'));
    const fifo = path.join(dir, 'netns');
    sh('mkfifo', [fifo]);
    const { hp, logs } = programmer(ns, { timeoutMs: 300 });
    const { hp: hp2 } = programmer(ns);
    try {
      const s = state([], [], [{ ifname: 'tn0', netns: fifo, mtu: 1400 }]);
      hp.sync(s);
      await hp.idle();
      let st = hp.status();
      assert.is(st.timeouts, 1);
      assert.is(st.aborts, 1);
      assert.is(st.failures, 1);
      assert.is(st.pendingItems, 1);
      assert.ok(st.lastError?.includes('killed after 300 ms'), String(st.lastError));
      assert.is(logs.length, 1);
      hp.sync(s);
      await hp.idle();
      st = hp.status();
      assert.is(st.children, 2, 'retried on the next sync');
      assert.is(st.timeouts, 2);

      hp2.sync(s);
      assert.ok(await waitFor(() => hp2.status().childPid !== null, 5000));
      const pid = hp2.status().childPid!;
      await hp2.stop(200);
      assert.is(hp2.status().running, false);
      assert.throws(() => process.kill(pid, 0), /ESRCH/);
    } finally {
      await hp.stop();
      await hp2.stop(200);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('batch output parsing: failures by line, an exit after a marker, a kill', () => {
  // As iproute2 6.1 prints them (captured on the development machine).
  const normal = parseBatchOutcome('Cannot find device "nosuch"\nCommand failed -:2\nRTNETLINK answers: No such process\nCommand failed -:4\n', 0, [], 5, 1, null);
  assert.equal([...normal.failed], [[1, 'Cannot find device "nosuch"'], [3, 'RTNETLINK answers: No such process']]);
  assert.is(normal.abort, null);
  assert.is(normal.notRunFrom, 5);
  // route, marker, neigh, marker, neigh (exits), marker, neigh: two markers printed.
  const ended = parseBatchOutcome('Error: Device for nexthop is not up.\nCommand failed -:1\nError: Invalid link address.\n', 2, [1, 3, 5], 7, 2, null);
  assert.is(ended.endedBy, 4);
  assert.is(ended.notRunFrom, 5);
  assert.equal([...ended.failed.keys()], [0, 4]);
  assert.ok(ended.abort?.includes('Invalid link address'));
  // Killed: what ran is unknown after the last marker seen.
  const killed = parseBatchOutcome('', 1, [1, 3], 4, null, 'killed after 300 ms');
  assert.is(killed.endedBy, null);
  assert.equal([...killed.failed.keys()], [2]);
  assert.is(parseBatchOutcome('', 0, [], 3, 0, null).failed.size, 0);
});

test.run();

test('pool routes carry their MTU (`mtu N`, IPv4 and IPv6): the kernel has it; a new MTU is one replace, none removes it; a bad one is refused', async () => {
  await withNetns(['hp'], async ([ns]) => {
    makeVeths(ns, ['podway0']);
    const { hp, logs } = programmer(ns);
    /** The pool routes' MTUs as the kernel has them (0: none). */
    const mtus = () => {
      const out: Record<string, number> = {};
      for (const f of ['-4', '-6']) {
        for (const r of JSON.parse(ns.ip(f, '-j', 'route', 'show', 'dev', 'podway0')) as { dst: string; protocol?: string; metrics?: { mtu?: number }[] }[]) {
          if (r.protocol !== 'kernel') out[r.dst] = r.metrics?.find((m) => m.mtu !== undefined)?.mtu ?? 0;
        }
      }
      return out;
    };
    try {
      hp.sync(state([], [{ cidr: '10.78.0.0/16', dev: 'podway0', mtu: 1450 }, { cidr: '10.79.0.0/16', dev: 'podway0', mtu: 1480 }, { cidr: 'fd00:78::/48', dev: 'podway0', mtu: 1430 }]));
      await hp.idle();
      assert.equal(logs, []);
      assert.equal(mtus(), { '10.78.0.0/16': 1450, '10.79.0.0/16': 1480, 'fd00:78::/48': 1430 });
      assert.ok(hp.status().lastCommands.includes('route replace 10.78.0.0/16 dev podway0 scope link mtu 1450'), hp.status().lastCommands.join('\n'));
      // the kernel sizes the node's own packets by it: a DF send bigger than it fails at once
      const ping = (to: string, size: number) => execFileSync('ip', ['netns', 'exec', ns.name, 'ping', '-c', '1', '-W', '1', '-M', 'do', '-s', String(size), to], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
      assert.throws(() => ping('10.78.0.9', 1423), /message too long, mtu=1450/);

      // A mode switch (VXLAN to IPIP): one replace, the kernel has the new MTU; no MTU: none.
      hp.sync(state([], [{ cidr: '10.78.0.0/16', dev: 'podway0', mtu: 1480 }, { cidr: '10.79.0.0/16', dev: 'podway0' }, { cidr: 'fd00:78::/48', dev: 'podway0', mtu: 1430 }]));
      await hp.idle();
      assert.equal([...hp.status().lastCommands].sort(), ['route replace 10.78.0.0/16 dev podway0 scope link mtu 1480', 'route replace 10.79.0.0/16 dev podway0 scope link']);
      assert.equal(mtus(), { '10.78.0.0/16': 1480, '10.79.0.0/16': 0, 'fd00:78::/48': 1430 });

      // Bad MTUs never reach ip (an IPv6 route's is at least 1280): logged, the pools stay routed, without one.
      hp.sync(state([], [{ cidr: '10.78.0.0/16', dev: 'podway0', mtu: 1480 }, { cidr: '10.79.0.0/16', dev: 'podway0', mtu: 67 }, { cidr: 'fd00:78::/48', dev: 'podway0', mtu: 1279 }]));
      await hp.idle();
      assert.ok(logs.some((l) => /pool route "10\.79\.0\.0\/16" dev "podway0": bad MTU 67 \(68\.\.65535\); routed without one/.test(l)), logs.join('\n'));
      assert.ok(logs.some((l) => /pool route "fd00:78::\/48" dev "podway0": bad MTU 1279 .*; routed without one/.test(l)), logs.join('\n'));
      assert.equal(hp.status().lastCommands, ['route replace fd00:78::/48 dev podway0']);
      assert.equal(mtus(), { '10.78.0.0/16': 1480, '10.79.0.0/16': 0, 'fd00:78::/48': 0 });
      assert.is(hp.status().pendingItems, 2, 'the two MTUs not programmed');
    } finally {
      await hp.stop();
    }
  });
});
