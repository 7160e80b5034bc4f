/**
 * Host ports (CNI portMappings, `podman run -p`, Kubernetes hostPort) on a running podway (root,
 * network namespaces; docs/cni.md, "Host ports"): the plugin's ADD records runtimeConfig.portMappings
 * in the WorkloadEndpoint's spec.ports as Calico does, and podway run forwards the node's port to the
 * pod. A TCP and a UDP server in veth pod A answer with the address and port they saw; they are
 * reached through the node's address from a client on the underlay (the uplink namespace), from the
 * node itself (its address and 127.0.0.1), from another pod of the node and from pod A itself
 * (hairpin), on an address given (hostIP) and not on another; a TUN pod's host port too. A second
 * pod asking for a taken port is refused naming the first; DEL takes the port away and a new ADD
 * (a restart) brings it back. Then a dual-stack pod's host ports over IPv6 (the node's IPv6
 * address from the underlay, the node, hairpin, an IPv6 hostIP). Then TAP and TUN pods from the
 * node's 127.0.0.1 and ::1 (podway0's route_localnet), a TAP pod's IPv6 host ports, and ICMP errors
 * about a host port's flow (a UDP client of a closed container port gets ECONNREFUSED) for veth,
 * TAP and TUN pods, from the underlay, the node and another pod, both families.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CniHarness, RunningPodway } from './harness';
import { applyResource } from '../../src/control/v3-store';
import { controlRequest } from '../../src/dataplane/control-server';
import { isRoot, sh, type Netns } from '../helpers/netns';
import { until } from '../helpers/until';

/** Answers each TCP connection and UDP datagram on the ports given with "LABEL FROM-ADDR:PORT"
 * (tcp6/udp6: on both families, an IPv4 peer said without its ::ffff: prefix); udpbig/udpbig6 with
 * 3000 bytes (more than the pod's MTU: fragments). */
const SERVER = `
const net = require('net'), dgram = require('dgram');
const [label, ...ports] = process.argv.slice(2);
const a = (x) => x.replace(/^::ffff:/, '');
for (const p of ports) {
  const [proto, port] = p.split('/');
  const any = proto.endsWith('6') ? '::' : '0.0.0.0';
  if (proto.startsWith('tcp')) net.createServer((c) => { c.end(label + ' ' + a(c.remoteAddress) + ':' + c.remotePort + '\\n'); c.on('error', () => {}); }).listen(Number(port), any);
  else { const s = dgram.createSocket(proto.endsWith('6') ? 'udp6' : 'udp4'); s.on('message', (m, r) => s.send(proto.startsWith('udpbig') ? Buffer.alloc(3000, 66) : label + ' ' + a(r.address) + ':' + r.port + '\\n', r.port, r.address)); s.bind(Number(port), any); }
}
setTimeout(() => process.exit(0), 120000);
`;

/** One request: prints the answer, or "ERR <why>"; 2 s at most. UDP through a connected socket,
 * which takes the answer only from the address and port it sent to; udplen: UDP, prints "LEN <bytes>". */
const CLIENT = `
const net = require('net'), dgram = require('dgram');
const [proto, host, port] = process.argv.slice(2);
const done = (t) => { process.stdout.write(t.trim() + '\\n'); process.exit(0); };
setTimeout(() => done('ERR timeout'), 2000);
if (proto === 'tcp') {
  let got = '';
  const c = net.connect(Number(port), host);
  c.on('data', (d) => { got += d; }); c.on('end', () => done(got)); c.on('error', (e) => done('ERR ' + e.code));
} else {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => done(proto === 'udplen' ? 'LEN ' + m.length : String(m))); s.on('error', (e) => done('ERR ' + e.code));
  s.connect(Number(port), host, () => s.send('x'));
}
`;


/** What withHostPortNode gives its test: the harness, the underlay's other end (10.99.0.254,
 * fd99::254 with `ip6`), the running podway and its log, and the client and server above. */
interface HostPortNode {
  readonly h: CniHarness;
  readonly uplink: Netns;
  readonly podway: RunningPodway;
  /** One request from `ns` (CLIENT): the answer, or "ERR <why>". */
  ask(ns: Netns, proto: string, host: string, port: number): string;
  /** Who answered and whom it saw: "A ADDR" (the answer without its ":PORT"), or "ERR <why>". */
  who(ns: Netns, proto: string, host: string, port: number): string;
  /** SERVER in `ns` answering as `label` on `ports` ("tcp/8080", "udp6/8081"); stopped at the end. */
  serve(ns: Netns, label: string, ports: string[]): void;
  /** Until `n` endpoints are attached (fails the test after 15 s). */
  attached(n: number): Promise<void>;
}

/**
 * The node of these tests, however `fn` ends torn down (servers and podway stopped by PID, the
 * namespaces and files removed): pool `cidr` (/26 blocks; with `pool6` an IPv6 pool too, no
 * encapsulation), the node's underlay eth0 10.99.0.1/24 and a second address 10.99.0.5 (hostIP),
 * its default route via the uplink's 10.99.0.254; with `ip6` the node's fd99::1/64 and fd99::5
 * (podway run --ip6 fd99::1/64) and the uplink's fd99::254; podway run up.
 */
async function withHostPortNode(o: { cidr: string; pool6?: string }, fn: (n: HostPortNode) => Promise<void>): Promise<void> {
  if (!isRoot()) throw new Error('this test needs root (network namespaces)');
  const h = new CniHarness();
  let podway: RunningPodway | null = null;
  const servers: ChildProcess[] = [];
  try {
    await h.setup({ cidr: o.cidr, blockSize: 26 });
    if (o.pool6 !== undefined) await applyResource(h.kv, { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: `pool6-${h.tag}` }, spec: { cidr: o.pool6, vxlanMode: 'Never' } });
    const uplink = h.addUplink();
    uplink.ip('addr', 'add', '10.99.0.254/24', 'dev', 'eth0');
    h.node.ip('route', 'add', 'default', 'via', '10.99.0.254');
    // a second address of the node, for a host port given on it alone (hostIP)
    h.node.ip('addr', 'add', '10.99.0.5/24', 'dev', 'eth0');
    if (o.pool6 !== undefined) {
      uplink.ip('-6', 'addr', 'add', 'fd99::254/64', 'dev', 'eth0', 'nodad');
      h.node.ip('-6', 'addr', 'add', 'fd99::1/64', 'dev', 'eth0', 'nodad');
      h.node.ip('-6', 'addr', 'add', 'fd99::5/64', 'dev', 'eth0', 'nodad');
    }
    const serverJs = path.join(h.dir, 'server.js');
    const clientJs = path.join(h.dir, 'client.js');
    writeFileSync(serverJs, SERVER);
    writeFileSync(clientJs, CLIENT);
    const ask = (ns: Netns, proto: string, host: string, port: number) => sh('ip', ['netns', 'exec', ns.name, process.execPath, clientJs, proto, host, String(port)], { allowFail: true, timeoutMs: 10_000 }).trim();
    podway = h.startPodway(o.pool6 !== undefined ? ['--ip6', 'fd99::1/64'] : []);
    const pw = podway;
    await pw.ready();
    await fn({
      h, uplink, podway: pw, ask,
      who: (ns, proto, host, port) => { const t = ask(ns, proto, host, port); return t.startsWith('ERR') ? t : t.slice(0, t.lastIndexOf(':')); },
      serve: (ns, label, ports) => { servers.push(spawn('ip', ['netns', 'exec', ns.name, process.execPath, serverJs, label, ...ports], { stdio: 'ignore' })); },
      attached: async (n) => {
        const ok = await until(async () => ((await controlRequest(h.control, { cmd: 'endpoints' })) as { state: string }[]).filter((e) => e.state === 'attached').length === n, 15_000);
        assert.ok(ok, `${n} pods attached: ${pw.log.slice(-5).join(' | ')}`);
      },
    });
  } catch (e) {
    if (podway) console.log(podway.log.slice(-30).join('\n'));
    throw e;
  } finally {
    const exits = servers.map((s) => (s.pid === undefined || s.exitCode !== null || s.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => s.once('exit', () => r()))));
    for (const s of servers) if (s.pid !== undefined) try { process.kill(s.pid, 'SIGTERM'); } catch { /* gone */ }
    await Promise.all(exits);
    await podway?.stop();
    await h.cleanup();
  }
}

test('host ports: TCP and UDP through the node\'s address from the underlay, the node, pods (hairpin), hostIP; a taken port refused; DEL and ADD again', async () => {
  await withHostPortNode({ cidr: '10.248.0.0/24' }, async ({ h, uplink, podway, ask, who, serve, attached }) => {
    const mappings = [
      { hostPort: 18080, containerPort: 8080, protocol: 'tcp' },
      { hostPort: 18081, containerPort: 8081, protocol: 'udp' },
      { hostPort: 18082, containerPort: 8080, protocol: 'tcp', hostIP: '10.99.0.5' },
      { hostPort: 18083, containerPort: 8083, protocol: 'udp' },
    ];
    const podA = h.pod('a');
    const podB = h.pod('b');
    const addA = await h.add(podA, 'hpa', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-a', extra: { runtimeConfig: { portMappings: mappings } } });
    const ipA = (addA.json.ips[0].address as string).split('/')[0];
    const addB = await h.add(podB, 'hpb', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-b' });
    const ipB = (addB.json.ips[0].address as string).split('/')[0];
    // spec.ports as Calico's WorkloadEndpointPort (name, protocol, port, hostPort, hostIP)
    const weps = await h.workloadEndpoints();
    const wepA = weps.find((w) => w.spec.containerID === 'hpa');
    assert.equal(wepA.spec.ports, [
      { name: '', protocol: 'tcp', port: 8080, hostPort: 18080, hostIP: '' },
      { name: '', protocol: 'udp', port: 8081, hostPort: 18081, hostIP: '' },
      { name: '', protocol: 'tcp', port: 8080, hostPort: 18082, hostIP: '10.99.0.5' },
      { name: '', protocol: 'udp', port: 8083, hostPort: 18083, hostIP: '' },
    ]);
    assert.is(weps.find((w) => w.spec.containerID === 'hpb').spec.ports, undefined, 'no ports, no spec.ports');
    serve(podA, 'A', ['tcp/8080', 'udp/8081', 'udpbig/8083']);
    await attached(2);
    // the server listens and the table has the rules
    const up = await until(async () => ask(uplink, 'tcp', '10.99.0.1', 18080).startsWith('A '), 10_000);
    const nft = sh('ip', ['netns', 'exec', h.node.name, 'nft', 'list', 'table', 'ip', 'podway']);
    assert.ok(up, `uplink -> 10.99.0.1:18080: ${ask(uplink, 'tcp', '10.99.0.1', 18080)} | ${nft} | ${podway.log.slice(-8).join(' | ')}`);

    // from the underlay: the pod sees the client's own address (no SNAT), the client the node's port
    assert.is(who(uplink, 'tcp', '10.99.0.1', 18080), 'A 10.99.0.254');
    assert.is(who(uplink, 'udp', '10.99.0.1', 18081), 'A 10.99.0.254', 'UDP answered from 10.99.0.1:18081 (a connected socket takes nothing else)');
    // hostIP: on that address only
    assert.is(who(uplink, 'tcp', '10.99.0.5', 18082), 'A 10.99.0.254');
    assert.match(ask(uplink, 'tcp', '10.99.0.1', 18082), /^ERR /, 'not on another address of the node');
    // the node itself, from its address and from 127.0.0.1 (given the node's address)
    assert.is(who(h.node, 'tcp', '10.99.0.1', 18080), 'A 10.99.0.1');
    assert.is(who(h.node, 'udp', '10.99.0.1', 18081), 'A 10.99.0.1');
    assert.is(who(h.node, 'tcp', '127.0.0.1', 18080), 'A 10.99.0.1');
    // another pod of the node (hairpin): its own address; pod A itself: the node's
    assert.is(who(podB, 'tcp', '10.99.0.1', 18080), `A ${ipB}`);
    assert.is(who(podB, 'udp', '10.99.0.1', 18081), `A ${ipB}`);
    assert.is(who(podA, 'tcp', '10.99.0.1', 18080), 'A 10.99.0.1');
    // the container port directly keeps working (its packets go through the node's kernel now)
    assert.is(who(podB, 'tcp', ipA, 8080), `A ${ipB}`);
    assert.is(who(h.node, 'tcp', ipA, 8080).startsWith('A '), true);
    // a UDP answer bigger than the pod's MTU (fragments) from a host port's container port, to
    // another pod of the node: through the host port and directly; all its fragments go through
    // the node's kernel, which reassembles them (a later fragment carries no port)
    assert.is(ask(podB, 'udplen', '10.99.0.1', 18083), 'LEN 3000', 'fragmented answer through the host port');
    assert.is(ask(podB, 'udplen', ipA, 8083), 'LEN 3000', 'fragmented answer from the container port directly');

    // a TUN pod's host port (its packets reach podway alone; the kernel reaches it through podway0)
    const podT = h.pod('t');
    await h.add(podT, 'hpt', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-t', extra: { interfaceType: 'tun', runtimeConfig: { portMappings: [{ hostPort: 18090, containerPort: 8090, protocol: 'tcp' }] } } });
    serve(podT, 'T', ['tcp/8090']);
    const tUp = await until(async () => ask(uplink, 'tcp', '10.99.0.1', 18090).startsWith('T '), 15_000);
    assert.ok(tUp, `uplink -> tun pod's 18090: ${ask(uplink, 'tcp', '10.99.0.1', 18090)} | ${podway.log.slice(-5).join(' | ')}`);
    assert.is(who(uplink, 'tcp', '10.99.0.1', 18090), 'T 10.99.0.254');
    assert.is(who(podB, 'tcp', '10.99.0.1', 18090), `T ${ipB}`);
    assert.is(who(h.node, 'tcp', '10.99.0.1', 18090), 'T 10.99.0.1');

    // a second pod asking for the same port: refused, naming the first; nothing made
    const podC = h.pod('c');
    const refused = await h.call({ command: 'ADD', containerId: 'hpc', netns: podC.path, ifname: 'eth0', args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-c', extra: { runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] } } });
    assert.is(refused.exitCode, 1, refused.stdout);
    assert.is(refused.json.code, 4, refused.stdout);
    assert.match(refused.json.msg, /tcp host port \*:18080 is already taken on node \S+ by WorkloadEndpoint default\/\S+hp--a\S* \(container hpa, 10\.248\.0\.\d+ port 8080\)/);
    assert.is(sh('ip', ['-n', podC.name, 'link', 'show', 'eth0'], { allowFail: true }), '', 'no interface made');
    // not a port mapping: code 7 naming the entry and field, nothing made
    const bad = await h.call({ command: 'ADD', containerId: 'hpc', netns: podC.path, ifname: 'eth0', args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-c', extra: { runtimeConfig: { portMappings: [{ hostPort: 18085, containerPort: 80 }, { hostPort: 0, containerPort: 80, protocol: 'tcp' }] } } });
    assert.is(bad.json.code, 7, bad.stdout);
    assert.match(bad.json.msg, 'runtimeConfig.portMappings[1].hostPort: expected a port (1-65535), got 0');
    assert.is(sh('ip', ['-n', podC.name, 'link', 'show', 'eth0'], { allowFail: true }), '', 'no interface made');
    // another protocol on that port is no clash
    const addC = await h.add(podC, 'hpc', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-c', extra: { runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 8081, protocol: 'udp' }] } } });
    const ipC = (addC.json.ips[0].address as string).split('/')[0];
    serve(podC, 'C', ['udp/8081']);
    const cUp = await until(async () => ask(uplink, 'udp', '10.99.0.1', 18080).startsWith('C '), 10_000);
    assert.ok(cUp, `udp 18080 -> pod C ${ipC}: ${ask(uplink, 'udp', '10.99.0.1', 18080)}`);

    // DEL: the port goes with the pod
    const del = await h.call({ command: 'DEL', containerId: 'hpa', netns: podA.path, ifname: 'eth0', args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-a' });
    assert.is(del.exitCode, 0, del.stdout);
    const gone = await until(async () => !sh('ip', ['netns', 'exec', h.node.name, 'nft', 'list', 'chain', 'ip', 'podway', 'hostport_dnat']).includes('tcp dport 18080'), 10_000);
    assert.ok(gone, 'the rule went with the endpoint');
    assert.match(ask(uplink, 'tcp', '10.99.0.1', 18080), /^ERR /);
    // ADD again (a restart): back
    await h.add(podA, 'hpa', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-a', extra: { runtimeConfig: { portMappings: mappings } } });
    const back = await until(async () => ask(uplink, 'tcp', '10.99.0.1', 18080).startsWith('A '), 15_000);
    assert.ok(back, `after ADD again: ${ask(uplink, 'tcp', '10.99.0.1', 18080)}`);

    // counted: podway's events and the table's counters
    const text = JSON.stringify(await controlRequest(h.control, { cmd: 'counters' }));
    assert.match(text, /"host_port_in":[1-9]/, text.slice(0, 400));
    assert.match(text, /"host_port_reply":[1-9]/, text.slice(0, 400));
    const shown = await until(async () => /"hostPortIn":[1-9]\d*,"hostPortDnat":[1-9]\d*,"hostPortCopy":[1-9]/.test(JSON.stringify(await controlRequest(h.control, { cmd: 'counters' }))), 10_000);
    assert.ok(shown, `the table's counters: ${JSON.stringify(((await controlRequest(h.control, { cmd: 'counters' })) as { nat?: unknown }).nat)}`);
  });
});

test('IPv6 host ports of a dual-stack pod: the node\'s IPv6 address from the underlay (TCP, UDP), the node itself, hairpin, an IPv6 hostIP; DEL removes them', async () => {
  await withHostPortNode({ cidr: '10.248.1.0/24', pool6: 'fd00:248::/120' }, async ({ h, uplink, podway, ask, who, serve, attached }) => {
    const mappings = [
      { hostPort: 18080, containerPort: 8080, protocol: 'tcp' },
      { hostPort: 18081, containerPort: 8081, protocol: 'udp' },
      { hostPort: 18082, containerPort: 8080, protocol: 'tcp', hostIP: 'fd99::5' },
      { hostPort: 18083, containerPort: 8083, protocol: 'udp' },
    ];
    const podA = h.pod('a6');
    const podB = h.pod('b6');
    const addA = await h.add(podA, 'hpa6', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-a6', extra: { runtimeConfig: { portMappings: mappings } } });
    const addB = await h.add(podB, 'hpb6', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-b6' });
    const ip6A = (addA.json.ips[1].address as string).split('/')[0];
    const ip6B = (addB.json.ips[1].address as string).split('/')[0];
    assert.match(ip6A, /^fd00:248::/);
    serve(podA, 'A', ['tcp6/8080', 'udp6/8081', 'udpbig6/8083']);
    await attached(2);
    const up = await until(async () => ask(uplink, 'tcp', 'fd99::1', 18080).startsWith('A '), 10_000);
    assert.ok(up, `uplink -> [fd99::1]:18080: ${ask(uplink, 'tcp', 'fd99::1', 18080)} | ${sh('ip', ['netns', 'exec', h.node.name, 'nft', 'list', 'table', 'ip6', 'podway'], { allowFail: true })} | ${podway.log.slice(-8).join(' | ')}`);

    // from the underlay over IPv6: the pod sees the client's address; UDP answered from the host port
    assert.is(who(uplink, 'tcp', 'fd99::1', 18080), 'A fd99::254');
    assert.is(who(uplink, 'udp', 'fd99::1', 18081), 'A fd99::254');
    // the same mapping over IPv4 (no hostIP: both families, as portmap)
    assert.is(who(uplink, 'tcp', '10.99.0.1', 18080), 'A 10.99.0.254');
    // an IPv6 hostIP: on that address only, and not over IPv4
    assert.is(who(uplink, 'tcp', 'fd99::5', 18082), 'A fd99::254');
    assert.match(ask(uplink, 'tcp', 'fd99::1', 18082), /^ERR /);
    assert.match(ask(uplink, 'tcp', '10.99.0.1', 18082), /^ERR /);
    // the node itself, from its IPv6 address and from ::1 (given the node's address)
    assert.is(who(h.node, 'tcp', 'fd99::1', 18080), 'A fd99::1');
    assert.is(who(h.node, 'udp', 'fd99::1', 18081), 'A fd99::1');
    assert.is(who(h.node, 'tcp', '::1', 18080), 'A fd99::1');
    // hairpin: another pod of the node (its own address), pod A itself (the node's)
    assert.is(who(podB, 'tcp', 'fd99::1', 18080), `A ${ip6B}`);
    assert.is(who(podB, 'udp', 'fd99::1', 18081), `A ${ip6B}`);
    assert.is(who(podA, 'tcp', 'fd99::1', 18080), 'A fd99::1');
    // the container port directly
    assert.is(who(podB, 'tcp', ip6A, 8080), `A ${ip6B}`);
    // a fragmented UDP answer (3000 bytes) to another pod: through the host port and directly
    assert.is(ask(podB, 'udplen', 'fd99::1', 18083), 'LEN 3000', 'fragmented answer through the host port (IPv6)');
    assert.is(ask(podB, 'udplen', ip6A, 8083), 'LEN 3000', 'fragmented answer from the container port directly (IPv6)');
    const text = JSON.stringify(await controlRequest(h.control, { cmd: 'counters' }));
    assert.match(text, /"host_port_in":[1-9]/, text.slice(0, 400));
    assert.match(text, /"host_port_reply":[1-9]/, text.slice(0, 400));

    // DEL: the IPv6 rules go with the pod
    const del = await h.call({ command: 'DEL', containerId: 'hpa6', netns: podA.path, ifname: 'eth0', args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-a6' });
    assert.is(del.exitCode, 0, del.stdout);
    const gone = await until(async () => !sh('ip', ['netns', 'exec', h.node.name, 'nft', 'list', 'chain', 'ip6', 'podway', 'hostport_dnat']).includes('dport 18080'), 10_000);
    assert.ok(gone, 'the rule went with the endpoint');
    assert.match(ask(uplink, 'tcp', 'fd99::1', 18080), /^ERR /);
  });
});

test('TAP and TUN pods from the node\'s 127.0.0.1 and ::1, a TAP pod\'s IPv6 host ports; ICMP errors about a host port\'s flow reach its client translated (a closed UDP port: ECONNREFUSED), veth, TAP and TUN, both families', async () => {
  await withHostPortNode({ cidr: '10.248.2.0/24', pool6: 'fd00:249::/120' }, async ({ h, uplink, podway, ask, who, serve, attached }) => {
    // each pod: a TCP and a UDP port served, and a UDP port mapped that nothing listens on
    const kinds = [['V', 'veth', 18100], ['P', 'tap', 18110], ['U', 'tun', 18120]] as const;
    const portsOf = (base: number) => [
      { hostPort: base, containerPort: base - 10000, protocol: 'tcp' },
      { hostPort: base + 1, containerPort: base - 9999, protocol: 'udp' },
      { hostPort: base + 2, containerPort: base - 9998, protocol: 'udp' },
    ];
    for (const [label, type, base] of kinds) {
      const ns = h.pod(label.toLowerCase());
      await h.add(ns, `hp${label}`, { args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-${label.toLowerCase()}`, extra: { interfaceType: type, runtimeConfig: { portMappings: portsOf(base) } } });
      serve(ns, label, [`tcp6/${base - 10000}`, `udp6/${base - 9999}`]);
    }
    const podB = h.pod('b');
    const addB = await h.add(podB, 'hpb', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=hp-b' });
    const ipB = (addB.json.ips[0].address as string).split('/')[0];
    const ip6B = (addB.json.ips[1].address as string).split('/')[0];
    await attached(4);
    for (const [label, , base] of kinds) {
      const up = await until(async () => ask(uplink, 'tcp', '10.99.0.1', base).startsWith(`${label} `) && ask(uplink, 'tcp', 'fd99::1', base).startsWith(`${label} `), 15_000);
      assert.ok(up, `uplink -> ${label}'s ${base}: ${ask(uplink, 'tcp', '10.99.0.1', base)} / ${ask(uplink, 'tcp', 'fd99::1', base)} | ${podway.log.slice(-5).join(' | ')}`);
    }
    for (const [label, type, base] of kinds) {
      // the node from its loopback: given the node's address (route_localnet on podway0 for TAP/TUN)
      assert.is(who(h.node, 'tcp', '127.0.0.1', base), `${label} 10.99.0.1`, `${type}: 127.0.0.1`);
      assert.is(who(h.node, 'udp', '127.0.0.1', base + 1), `${label} 10.99.0.1`, `${type}: 127.0.0.1 UDP`);
      assert.is(who(h.node, 'tcp', '::1', base), `${label} fd99::1`, `${type}: ::1`);
      // IPv6: from the underlay, the node's IPv6 address, another pod
      assert.is(who(uplink, 'tcp', 'fd99::1', base), `${label} fd99::254`, `${type}: IPv6 from the underlay`);
      assert.is(who(uplink, 'udp', 'fd99::1', base + 1), `${label} fd99::254`, `${type}: IPv6 UDP from the underlay`);
      assert.is(who(h.node, 'tcp', 'fd99::1', base), `${label} fd99::1`, `${type}: the node's IPv6 address`);
      assert.is(who(podB, 'tcp', 'fd99::1', base), `${label} ${ip6B}`, `${type}: IPv6 from another pod`);
      assert.is(who(podB, 'tcp', '10.99.0.1', base), `${label} ${ipB}`, `${type}: IPv4 from another pod`);
      // a closed container port: the pod's port unreachable reaches the client as the host port's
      for (const [from, name] of [[uplink, 'the underlay'], [h.node, 'the node'], [podB, 'another pod']] as const) {
        for (const addr of ['10.99.0.1', 'fd99::1']) assert.is(ask(from, 'udp', addr, base + 2), 'ERR ECONNREFUSED', `${type}: from ${name} to ${addr}:${base + 2}, closed`);
      }
      assert.is(ask(h.node, 'udp', '127.0.0.1', base + 2), 'ERR ECONNREFUSED', `${type}: from 127.0.0.1, closed`);
      assert.is(ask(h.node, 'udp', '::1', base + 2), 'ERR ECONNREFUSED', `${type}: from ::1, closed`);
    }
    // what makes 127.0.0.1 work for TAP and TUN pods: podway0's route_localnet (without it the
    // kernel's routing refuses the translated packet's loopback source: EINVAL, a timeout here)
    const localnet = (v: string) => h.node.exec('sysctl', ['-qw', `net.ipv4.conf.podway0.route_localnet=${v}`]);
    assert.is(h.node.exec('cat', ['/proc/sys/net/ipv4/conf/podway0/route_localnet']).trim(), '1', 'podway set it');
    localnet('0');
    try {
      assert.match(ask(h.node, 'tcp', '127.0.0.1', 18110), /^ERR /, 'tap pod from 127.0.0.1 without route_localnet on podway0');
    } finally {
      localnet('1');
    }
    assert.is(who(h.node, 'tcp', '127.0.0.1', 18110), 'P 10.99.0.1');
  });
});

test.run();
