// BGP over IPv6 against a real BIRD 2: the TCP session between IPv6 addresses (::1 on both ends,
// ports of our own), carrying IPv6 unicast only, as Calico's sessions between nodes' IPv6 addresses
// do: MP_REACH_NLRI / MP_UNREACH_NLRI both ways, BIRD's IPv4 routes not taken over it, IPv6
// End-of-RIB after a graceful restart, and TCP-MD5 on an IPv6 session. Also an IPv6-only node (no
// IPv4 address, CALICO_ROUTER_ID=hash) through the BGP agent of `podway run --bgp`, with BIRD in a
// network namespace of its own (root): two IPv6 addresses on its loopback, as ::1 is the only one
// the host's has. And RFC 2545: BIRD directly connected over a veth sends a global + link-local
// next hop (checked on the wire with tcpdump/tshark), of which podway uses the global one; and
// BIRD configured as calico-node's confd writes it (`multihop` on every session, `gateway
// recursive`, a direct protocol) on the same kind of link sends the global one alone, as podway.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BgpSpeaker, BgpPeerStatus } from '../../src/control/bgp/speaker';
import { Bird, birdBgpConfig, loopbackNet, startBird, waitFor } from './bird';
import { freePort } from '../helpers/etcd';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { withNetns } from '../helpers/netns';
import type { NodeStatus } from '../../src/control/bgp/agent';
import type { LearnedRoute } from '../../src/control/route-calc';

const quiet = () => undefined;

interface Setup {
  bird: Bird;
  /** A speaker at ::1 (router ID 127.x.y.2) peering with BIRD at ::1 over IPv6, IPv6 unicast only. */
  make: (opts?: { password?: string; gracefulRestartSeconds?: number; passive?: boolean; bindBoth?: boolean }) => BgpSpeaker;
}

// BIRD refuses to announce a next hop equal to the neighbour's address (both ends are ::1 here), so
// it announces its IPv6 routes with another one.
async function setup(birdExtra = '', ipv6Extra = 'next hop address fd00:ff::3;'): Promise<Setup> {
  const ip = loopbackNet();
  // Ports free on ::1 now, asked of the kernel (randomPort()'s 20000-60000 overlaps the ephemeral
  // range, and port + 1 was never checked): two distinct ones.
  const birdPort = await freePort('::1');
  let ourPort = await freePort('::1');
  for (let i = 0; ourPort === birdPort && i < 10; i++) ourPort = await freePort('::1');
  const bird = await startBird(birdBgpConfig({
    address: '::1', routerId: ip(3), port: birdPort, as: 64512,
    // BIRD has routes of both families and offers both; the session carries IPv6 only.
    statics: ['10.99.0.0/24'], statics6: ['fd00:99::/64', 'fd00:99:1::/64'],
    neighbors: [{ name: 'podway', address: '::1', port: ourPort, as: 64512, extra: birdExtra, ipv6: ipv6Extra }],
  }));
  const make = (opts: { password?: string; gracefulRestartSeconds?: number; passive?: boolean; bindBoth?: boolean } = {}) => {
    // bindBoth: listening as bindMode NodeIP does on a dual-stack node, on the IPv4 and the IPv6 address.
    const listen = opts.bindBoth ? { listenAddress: ip(2), listenAddress6: '::1' } : { listenAddress: '::1' };
    const s = new BgpSpeaker({ localAs: 64512, routerId: ip(2), ...listen, listenPort: ourPort, connectRetrySeconds: 1, log: quiet, gracefulRestartSeconds: opts.gracefulRestartSeconds });
    s.setPeers([{ address: '::1', asNumber: 64512, port: birdPort, localAddress: '::1', holdTimeSeconds: 9, families: ['ipv6'], ...(opts.password ? { password: opts.password } : {}), ...(opts.passive ? { passive: true } : {}) }]);
    return s;
  };
  return { bird, make };
}

const peer = (s: BgpSpeaker): BgpPeerStatus => s.status()[0]!;
const API = 'projectcalico.org/v3';

interface AgentLine { status: NodeStatus; learned: LearnedRoute[]; error: string | null }
interface AgentChild {
  /** The latest line once `cond` holds for it (20 s at most; the failure shows the agent's logs and BIRD's). */
  until(what: string, cond: (l: AgentLine) => boolean, bird: Bird): Promise<AgentLine>;
  /** SIGTERM by PID (SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/** The agent of `podway run --bgp` (agent-child.ts) in namespace `ns`, on `cfg`. */
function agentIn(ns: string, cfg: { node: string; docs: Record<string, unknown>[]; routerId?: string }): AgentChild {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, path.join(__dirname, 'agent-child.js'), JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let last: AgentLine | null = null;
  let buf = '';
  let stderr = '';
  const logs: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = JSON.parse(buf.slice(0, i)) as AgentLine & { logs: string[] };
      logs.push(...l.logs);
      last = l;
      buf = buf.slice(i + 1);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  return {
    until: async (what, cond, bird) => {
      try {
        return await waitFor(what, () => (last !== null && cond(last) ? last : null), 20_000);
      } catch (e) {
        assert.unreachable(`${(e as Error).message}: ${JSON.stringify(last)}\n${logs.join('\n')}\n${stderr}\n${bird.log()}`);
        throw e;
      }
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    },
  };
}
const established = (s: BgpSpeaker) => peer(s).state === 'Established';

test('IPv6 session with BIRD: IPv6 unicast only, routes both ways, withdrawals both ways', async () => {
  const { bird, make } = await setup();
  const speaker = make();
  try {
    speaker.setExports([{ prefix: 'fd00:10:244:1::/122' }, { prefix: '10.244.3.0/26' }]);
    await speaker.start();
    await waitFor('Established over IPv6', () => established(speaker));
    const text = await bird.protocol('podway');
    assert.match(text, /Established/);
    assert.match(text, /Channel ipv6\s+State:\s+UP/);
    assert.not.match(text, /Channel ipv4\s+State:\s+UP/, 'IPv4 is not negotiated on an IPv6 session');

    const learned = await waitFor('BIRD\'s IPv6 routes learned', () => {
      const r = speaker.learned();
      return r.length === 2 ? r : null;
    });
    assert.equal(learned.map((r) => [r.prefix, r.nextHop, r.peer]).sort(), [['fd00:99:1::/64', 'fd00:ff::3', '::1'], ['fd00:99::/64', 'fd00:ff::3', '::1']]);
    assert.is(speaker.ipv4RibsComplete(), true, 'an IPv6-only peer carries no IPv4 routes to wait for');

    // Our IPv6 block in BIRD, with our session address as next hop; the IPv4 one is not sent here.
    await waitFor('our IPv6 export in BIRD', async () => (await bird.routes('podway')).join() === 'fd00:10:244:1::/122');
    assert.match(await bird.birdc('show', 'route', 'all', 'fd00:10:244:1::/122'), /BGP\.next_hop: ::1/);

    speaker.setExports([{ prefix: 'fd00:10:244:1::/122' }, { prefix: 'fd00:10:244:1::40/122' }]);
    await waitFor('second IPv6 export in BIRD', async () => (await bird.routes('podway')).length === 2);
    speaker.setExports([{ prefix: 'fd00:10:244:1::40/122' }]);
    await waitFor('IPv6 withdrawal (MP_UNREACH_NLRI) in BIRD', async () => (await bird.routes('podway')).join() === 'fd00:10:244:1::40/122');

    await bird.birdc('disable', 's6');
    await waitFor('BIRD\'s IPv6 withdrawals learned', () => speaker.learned().length === 0);
    assert.is(peer(speaker).state, 'Established');
  } finally {
    await speaker.stop();
    await bird.stop();
  }
});

test('graceful restart over IPv6: BIRD keeps our IPv6 routes, then drops the stale one at our IPv6 End-of-RIB', async () => {
  const { bird, make } = await setup('graceful restart on;');
  const first = make({ gracefulRestartSeconds: 60 });
  let second: BgpSpeaker | undefined;
  try {
    first.setExports([{ prefix: 'fd00:10:244:5::/122' }, { prefix: 'fd00:10:244:5::40/122' }]);
    await first.start();
    await waitFor('Established', () => established(first));
    await waitFor('both IPv6 exports in BIRD', async () => (await bird.routes('podway')).length === 2);
    await first.stop({ graceful: true });
    // BIRD holds them (stale) while we are away.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await bird.routes('podway'), ['fd00:10:244:5::/122', 'fd00:10:244:5::40/122']);
    second = make({ gracefulRestartSeconds: 60 });
    second.setExports([{ prefix: 'fd00:10:244:5::/122' }]);
    await second.start();
    await waitFor('Established again', () => established(second!));
    // Only our End-of-RIB for IPv6 (an empty MP_UNREACH_NLRI) tells BIRD the second is gone.
    await waitFor('the stale IPv6 route dropped at End-of-RIB', async () => (await bird.routes('podway')).join() === 'fd00:10:244:5::/122', 20_000);
  } finally {
    await first.stop();
    await second?.stop();
    await bird.stop();
  }
});

test('TCP-MD5 on an IPv6 session BIRD opens to our IPv6 listener (beside an IPv4 one, as bindMode NodeIP): the same password establishes, routes flow', async () => {
  const { bird, make } = await setup('password "v6-secret";');
  // Passive: only BIRD dials, so the session comes up only through the keyed IPv6 listener.
  const speaker = make({ password: 'v6-secret', passive: true, bindBoth: true });
  try {
    speaker.setExports([{ prefix: 'fd00:10:244:7::/122' }]);
    await speaker.start();
    await waitFor('Established with TCP-MD5 over IPv6', () => established(speaker), 20_000);
    await waitFor('our IPv6 export in BIRD', async () => (await bird.routes('podway')).join() === 'fd00:10:244:7::/122');
    await waitFor('BIRD\'s IPv6 routes learned', () => speaker.learned().length === 2);
  } finally {
    await speaker.stop();
    await bird.stop();
  }
});

test('an IPv6-only node (no spec.bgp.ipv4Address) with CALICO_ROUTER_ID=hash peers with BIRD over IPv6: the router ID confd derives from the node name, routes both ways, its IPv4 BGPPeer skipped', async () => {
  await withNetns(['v6only'], async ([ns]) => {
    const [us, them] = ['fd00:98::1', 'fd00:98::2'];
    for (const a of [us, them]) ns!.ip('-6', 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad');
    const bird = await startBird(birdBgpConfig({
      address: them, routerId: '192.0.2.2', port: 179, as: 64512, statics: [], statics6: ['fd00:99::/64'],
      neighbors: [{ name: 'podway', address: us, port: 179, as: 64512, ipv4: false, ipv6: '' }],
    }), ns!.name);
    const docs = [
      { apiVersion: API, kind: 'IPPool', metadata: { name: 'p6' }, spec: { cidr: 'fd00:10:244::/64' } },
      // bindMode NodeIP: our listener on our address alone (BIRD holds port 179 on its own).
      { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { bindMode: 'NodeIP' } },
      { apiVersion: API, kind: 'Node', metadata: { name: 'test-node-hash' }, spec: { bgp: { ipv6Address: `${us}/128` } } },
      { apiVersion: API, kind: 'BlockAffinity', metadata: { name: 'a1' }, spec: { node: 'test-node-hash', cidr: 'fd00:10:244::/122', state: 'confirmed', deleted: 'false' } },
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'bird' }, spec: { peerIP: them, asNumber: 64512 } },
      { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'tor4' }, spec: { peerIP: '192.0.2.9', asNumber: 65000 } },
    ];
    const agent = agentIn(ns!.name, { node: 'test-node-hash', docs, routerId: 'hash' });
    try {
      const up = await agent.until('the IPv6-only node Established with BIRD, BIRD\'s route learned', (l) => l.status.peers[0]?.bgpState === 'Established' && l.learned.length === 1, bird);
      assert.is(up.error, null);
      assert.is(up.status.routerId, '197.137.39.194', 'hashToIPv4("test-node-hash")');
      assert.equal(up.status.peers.map((p) => [p.address, p.type]), [[them, 'global']]);
      assert.ok((up.status.warnings ?? []).some((w) => w.includes('192.0.2.9 is IPv4 and node test-node-hash has no spec.bgp.ipv4Address')), JSON.stringify(up.status.warnings));
      assert.equal(up.learned, [{ prefix: 'fd00:99::/64', nextHop: them, peer: them }]);
      // BIRD sees our router ID and has our IPv6 block, next hop our IPv6 address.
      assert.match(await bird.protocol('podway'), /Neighbor ID:\s+197\.137\.39\.194/);
      await waitFor('our IPv6 block in BIRD', async () => (await bird.routes('podway')).join() === 'fd00:10:244::/122');
      assert.match(await bird.birdc('show', 'route', 'all', 'fd00:10:244::/122'), new RegExp(`BGP\\.next_hop: ${us}`));
    } finally {
      await agent.stop();
      await bird.stop();
    }
  });
});

test('RFC 2545: BIRD on a shared link sends a 32-octet IPv6 next hop (global + link-local, seen on the wire); podway uses the global one', async () => {
  await withNetns(['v6ll-a', 'v6ll-b'], async ([a, b]) => {
    // No DAD: the link-local addresses are usable at once (BIRD sends one only when it has it).
    for (const ns of [a!, b!]) ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    // Made inside a (not moved in from the host's namespace), so both ends get link-local addresses.
    a!.ip('link', 'add', 'lla', 'type', 'veth', 'peer', 'name', 'llb', 'netns', b!.name);
    a!.ip('link', 'set', 'lla', 'up');
    b!.ip('link', 'set', 'llb', 'up');
    const [us, them] = ['fd00:97::1', 'fd00:97::2'];
    a!.ip('-6', 'addr', 'add', `${us}/64`, 'dev', 'lla', 'nodad');
    b!.ip('-6', 'addr', 'add', `${them}/64`, 'dev', 'llb', 'nodad');
    // The kernel gives the veth its link-local address a moment after it is up.
    const themLl = await waitFor('BIRD\'s link-local address', () => /inet6 (fe80::[0-9a-f:]+)\/64 scope link/.exec(b!.ip('-6', 'addr', 'show', 'dev', 'llb'))?.[1], 10_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'podway-rfc2545-'));
    const cap = path.join(dir, 'bgp.pcap');
    // Direct eBGP (no multihop): BIRD puts its link-local address beside the global one.
    const bird = await startBird(birdBgpConfig({
      address: them, routerId: '192.0.2.2', port: 179, as: 65000, statics: [], statics6: ['fd00:99::/64'],
      neighbors: [{ name: 'podway', address: us, port: 179, as: 64512, ipv4: false, ipv6: '', extra: 'direct;' }],
    }), b!.name);
    const dump = spawn('ip', ['netns', 'exec', a!.name, 'tcpdump', '-i', 'lla', '--immediate-mode', '-U', '-w', cap, 'tcp port 179'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let agent: AgentChild | null = null;
    const tshark = (args: string[]) => execFileSync('tshark', ['-r', cap, '-d', 'tcp.port==179,bgp', ...args], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] });
    const hopsOf = () => tshark(['-Y', 'bgp.update.path_attribute.mp_reach_nlri', '-T', 'fields', '-e', 'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6', '-e', 'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local']).trim().split('\n');
    const seen = () => tshark([]).split('\n').slice(0, 30).join('\n');
    try {
      await waitFor('tcpdump capturing', () => existsSync(cap), 10_000);
      agent = agentIn(a!.name, { node: 'node1', routerId: '192.0.2.1', docs: [
        { apiVersion: API, kind: 'IPPool', metadata: { name: 'p6' }, spec: { cidr: 'fd00:10:244::/64' } },
        { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { bindMode: 'NodeIP' } },
        { apiVersion: API, kind: 'Node', metadata: { name: 'node1' }, spec: { bgp: { ipv6Address: `${us}/64` } } },
        { apiVersion: API, kind: 'BGPPeer', metadata: { name: 'bird' }, spec: { peerIP: them, asNumber: 65000 } },
      ] });
      const up = await agent.until('BIRD\'s route learned', (l) => l.learned.length === 1, bird);
      assert.equal(up.learned, [{ prefix: 'fd00:99::/64', nextHop: them, peer: them }], 'the global next hop');
      // The UPDATE as it came: global and link-local next hop (32 octets).
      const ok = await waitFor('the UPDATE in the capture', () => hopsOf().includes(`${them}\t${themLl}`), 10_000).catch(() => false);
      assert.ok(ok, `MP_REACH_NLRI next hops from BIRD: ${JSON.stringify(hopsOf())} (want ${them} + ${themLl})\n${seen()}`);
    } finally {
      await agent?.stop();
      if (dump.pid !== undefined && dump.exitCode === null && dump.signalCode === null) {
        const exited = new Promise((r) => dump.once('exit', r));
        process.kill(dump.pid, 'SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      }
      await bird.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('calico-node\'s BIRD for IPv6 (confd\'s template: multihop, gateway recursive) on a shared link sends a 16-octet global next hop, as podway; each side routes the other\'s block via its global address', async () => {
  await withNetns(['v6mh-a', 'v6mh-b'], async ([a, b]) => {
    for (const ns of [a!, b!]) ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    a!.ip('link', 'add', 'mha', 'type', 'veth', 'peer', 'name', 'mhb', 'netns', b!.name);
    a!.ip('link', 'set', 'mha', 'up');
    b!.ip('link', 'set', 'mhb', 'up');
    const [us, them] = ['fd00:96::1', 'fd00:96::2'];
    a!.ip('-6', 'addr', 'add', `${us}/64`, 'dev', 'mha', 'nodad');
    b!.ip('-6', 'addr', 'add', `${them}/64`, 'dev', 'mhb', 'nodad');
    // Both ends have their link-local addresses: what BIRD would send beside the global one.
    await waitFor('BIRD\'s link-local address', () => /inet6 fe80::[0-9a-f:]+\/64 scope link/.test(b!.ip('-6', 'addr', 'show', 'dev', 'mhb')), 10_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'podway-v6mh-'));
    const cap = path.join(dir, 'bgp.pcap');
    // node2's BIRD for IPv6 as confd renders its mesh session with node1 (bird6.cfg.template: the
    // bgp_template's options, `ttl security off; multihop;`, its block from the static protocol, a
    // direct protocol for the interfaces' subnets).
    const bird = await startBird(`
router id 192.0.2.2;
log stderr all;
protocol device { scan time 2; }
protocol direct { ipv6; interface -"cali*", "*"; }
protocol static s6 { ipv6; route fd00:10:244::40/122 blackhole; }
protocol bgp Mesh_fd00_96__1 {
  description "Connection to BGP peer";
  local ${them} as 64512;
  neighbor ${us} as 64512;
  source address ${them};
  graceful restart;
  connect delay time 2;
  connect retry time 1;
  error wait time 1, 5;
  ttl security off;
  multihop;
  ipv6 { gateway recursive; add paths on; import all; export where proto = "s6"; };
}
`, b!.name);
    const dump = spawn('ip', ['netns', 'exec', a!.name, 'tcpdump', '-i', 'mha', '--immediate-mode', '-U', '-w', cap, 'tcp port 179'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let agent: AgentChild | null = null;
    const tshark = (args: string[]) => execFileSync('tshark', ['-r', cap, '-d', 'tcp.port==179,bgp', ...args], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] });
    const hopsOf = () => tshark(['-Y', 'bgp.update.path_attribute.mp_reach_nlri', '-T', 'fields', '-e', 'bgp.update.path_attribute.mp_reach_nlri.next_hop', '-e', 'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6', '-e', 'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local']).trim().split('\n').filter((l) => l.trim() !== '');
    try {
      await waitFor('tcpdump capturing', () => existsSync(cap), 10_000);
      agent = agentIn(a!.name, { node: 'node1', routerId: '192.0.2.1', docs: [
        { apiVersion: API, kind: 'IPPool', metadata: { name: 'p6' }, spec: { cidr: 'fd00:10:244::/64' } },
        { apiVersion: API, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { bindMode: 'NodeIP' } },
        { apiVersion: API, kind: 'Node', metadata: { name: 'node1' }, spec: { bgp: { ipv6Address: `${us}/64` } } },
        { apiVersion: API, kind: 'Node', metadata: { name: 'node2' }, spec: { bgp: { ipv6Address: `${them}/64` } } },
        { apiVersion: API, kind: 'BlockAffinity', metadata: { name: 'a1' }, spec: { node: 'node1', cidr: 'fd00:10:244::/122', state: 'confirmed', deleted: 'false' } },
      ] });
      const up = await agent.until('the IPv6 mesh session up, node2\'s block learned', (l) => l.status.peers[0]?.bgpState === 'Established' && l.learned.length === 1, bird);
      assert.equal(up.status.peers.map((p) => [p.address, p.type]), [[them, 'node-to-node mesh']]);
      assert.equal(up.learned, [{ prefix: 'fd00:10:244::40/122', nextHop: them, peer: them }]);
      // BIRD has our block via our global address, resolved over its direct route (gateway recursive).
      const ours = await waitFor('our block in BIRD, resolved', async () => {
        const text = await bird.birdc('show', 'route', 'all', 'fd00:10:244::/122');
        return new RegExp(`via ${us} on mhb`).test(text) ? text : null;
      }, 20_000).catch(async () => bird.birdc('show', 'route', 'all', 'fd00:10:244::/122'));
      assert.match(ours, new RegExp(`BGP\\.next_hop: ${us}\\n`), 'our next hop: the global address alone');
      assert.match(ours, new RegExp(`via ${us} on mhb`));
      // On the wire: every MP_REACH_NLRI next hop, both ways, is one global address (no link-local).
      const hops = await waitFor('both UPDATEs in the capture', () => {
        const h = hopsOf();
        return h.some((l) => l.includes(them)) && h.some((l) => l.includes(us)) ? h : null;
      }, 10_000).catch(() => hopsOf());
      assert.ok(hops.some((l) => l.includes(them)) && hops.some((l) => l.includes(us)), `MP_REACH_NLRI next hops: ${JSON.stringify(hops)}`);
      assert.not.ok(hops.some((l) => /fe80:/i.test(l)), `no link-local next hop from BIRD (multihop) nor from podway: ${JSON.stringify(hops)}`);
    } finally {
      await agent?.stop();
      if (dump.pid !== undefined && dump.exitCode === null && dump.signalCode === null) {
        const exited = new Promise((r) => dump.once('exit', r));
        process.kill(dump.pid, 'SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      }
      await bird.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test.run();
