// Runs a real BIRD 2 (Debian's bird2) for BGP tests: its own config, control socket and pid file
// in a temporary directory; every process is killed by PID and the directory removed on stop()
// or, at the latest, when the test process exits. Peers on loopback with per-test 127.x
// addresses and high ports, so nothing leaves the machine and tests do not collide.
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';

export const BIRD_BINARY = '/usr/sbin/bird';
export const BIRDC_BINARY = '/usr/sbin/birdc';

const running = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const p of running) if (p.pid) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh 127.a.b.0 base for one test: addresses base+1.. are ours alone. */
export function loopbackNet(): (host: number) => string {
  const a = randomInt(1, 255);
  const b = randomInt(0, 256);
  return host => `127.${a}.${b}.${host}`;
}

export function randomPort(): number {
  return randomInt(20000, 60000);
}

export interface Bird {
  readonly dir: string;
  readonly socket: string;
  pid(): number;
  /** Output of `birdc -s SOCKET <args>`. */
  birdc(...args: string[]): Promise<string>;
  /** Prefixes in BIRD's table (optionally only those from one protocol). */
  routes(protocol?: string): Promise<string[]>;
  /** `show protocols all NAME` text. */
  protocol(name: string): Promise<string>;
  /** SIGKILLs BIRD and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts BIRD again with the same config. */
  start(): Promise<void>;
  signal(sig: 'SIGSTOP' | 'SIGCONT'): void;
  /** Kills BIRD and removes its directory. */
  stop(): Promise<void>;
  log(): string;
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** `netns`: run BIRD in that named network namespace (`ip netns exec` execs it: the PID is BIRD's). */
export async function startBird(config: string, netns?: string): Promise<Bird> {
  if (!existsSync(BIRD_BINARY)) throw new Error(`${BIRD_BINARY} is missing: run \`bash scripts/setup.sh\` (as root), which installs Debian's bird2`);
  const dir = mkdtempSync(join(tmpdir(), 'podway-bird-'));
  dirs.add(dir);
  const conf = join(dir, 'bird.conf');
  const socket = join(dir, 'bird.ctl');
  writeFileSync(conf, config);
  let proc: ChildProcess | undefined;
  let output = '';

  const birdc = (...args: string[]) => new Promise<string>((resolve, reject) => {
    execFile(BIRDC_BINARY, ['-s', socket, ...args], { timeout: 5000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`birdc ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });

  const launch = async () => {
    output = '';
    const args = ['-f', '-c', conf, '-s', socket, '-P', join(dir, 'bird.pid')];
    const p = netns ? spawn('ip', ['netns', 'exec', netns, BIRD_BINARY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(BIRD_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => { output = (output + b.toString()).slice(-20000); };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    running.add(p);
    p.once('exit', () => running.delete(p));
    proc = p;
    for (let i = 0; ; i++) {
      if (p.exitCode !== null) throw new Error(`bird exited (${p.exitCode}) at start:\n${output}`);
      try {
        await birdc('show', 'status');
        return;
      } catch (e) {
        if (i > 100) throw new Error(`bird not answering on ${socket}: ${(e as Error).message}\n${output}`);
      }
      await sleep(50);
    }
  };

  const kill = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>(resolve => p.once('exit', () => resolve()));
    process.kill(p.pid!, 'SIGKILL');
    await exited;
  };

  try {
    await launch();
  } catch (e) {
    await kill();
    rmSync(dir, { recursive: true, force: true });
    dirs.delete(dir);
    throw e;
  }

  return {
    dir,
    socket,
    pid: () => proc!.pid!,
    birdc,
    async routes(protocol?: string) {
      const out = await birdc('show', 'route', ...(protocol ? ['protocol', protocol] : []));
      return out.split('\n').map(l => /^([0-9a-f.:]+\/\d+)\s/.exec(l)?.[1]).filter((x): x is string => !!x).sort();
    },
    protocol: name => birdc('show', 'protocols', 'all', name),
    kill,
    start: launch,
    signal(sig) {
      process.kill(proc!.pid!, sig);
    },
    async stop() {
      if (proc && proc.signalCode === 'SIGSTOP') process.kill(proc.pid!, 'SIGCONT');
      await kill();
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
    log: () => output,
  };
}

/** Polls `check` every 100 ms until it returns a truthy value or `ms` pass; throws with `what`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, ms = 15000): Promise<Exclude<T, null | undefined | false | 0 | ''>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as Exclude<T, null | undefined | false | 0 | ''>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(100);
  }
}

export interface BirdBgpNeighbor {
  name: string;
  address: string;
  port: number;
  as: number;
  /** Extra lines in the protocol block (e.g. "graceful restart on;"). */
  extra?: string;
  /** Extra lines in its ipv6 channel; IPv6 is only configured when this is given. */
  ipv6?: string;
  /** Extra lines in its ipv4 channel, or false for no IPv4 channel (default: one). */
  ipv4?: string | false;
}

/**
 * A bird.conf for BIRD at `address`:`port` in AS `as`, originating `statics` (and `statics6`) as
 * unreachable routes from protocol s4/s6, with one BGP protocol per neighbour that imports
 * everything and exports the statics plus whatever BGP learned. Timers are short so tests are.
 */
export function birdBgpConfig(opts: { address: string; port: number; as: number; statics: string[]; statics6?: string[]; neighbors: BirdBgpNeighbor[]; routerId?: string }): string {
  const protos = opts.neighbors.map(n => `
protocol bgp ${n.name} {
  local ${opts.address} port ${opts.port} as ${opts.as};
  neighbor ${n.address} port ${n.port} as ${n.as};
  strict bind;
  ${n.as !== opts.as ? 'multihop; # loopback peers share no subnet' : ''}
  hold time 3;
  keepalive time 1;
  connect retry time 1;
  connect delay time 1;
  error wait time 1, 2;
  ${n.extra ?? ''}
  ${n.ipv4 !== false ? `ipv4 { import all; export where proto = "s4" || source = RTS_BGP; ${n.ipv4 ?? ''} };` : ''}
  ${n.ipv6 !== undefined ? `ipv6 { import all; export where proto = "s6" || source = RTS_BGP; ${n.ipv6} };` : ''}
}`).join('\n');
  return `
router id ${opts.routerId ?? opts.address};
log stderr all;
protocol device {}
protocol static s4 {
  ipv4;
${opts.statics.map(p => `  route ${p} unreachable;`).join('\n')}
}
${opts.statics6 ? `protocol static s6 {\n  ipv6;\n${opts.statics6.map(p => `  route ${p} unreachable;`).join('\n')}\n}` : ''}
${protos}
`;
}

/**
 * A bird.conf for a ToR-like BIRD at `address`:`port` in AS `as` with one passive BGP protocol
 * (`protocol`, default "tor") toward `neighbor` in AS `neighborAs`: strict bind, multihop (loopback
 * peers share no subnet; `multihop: false` for an iBGP peer), 1 s retry timers, `extra` lines in the
 * protocol block. `statics` are originated as unreachable routes from protocol s4 (none: no s4);
 * its ipv4 channel imports `import` (default all) and exports `export` (default: the statics, or
 * none without them).
 */
export function torBirdConfig(o: { address: string; port: number; as: number; neighbor: string; neighborAs: number; protocol?: string; statics?: string[]; multihop?: boolean; extra?: string; import?: string; export?: string }): string {
  const statics = o.statics?.length ? `protocol static s4 { ipv4; ${o.statics.map((p) => `route ${p} unreachable;`).join(' ')} }` : '';
  return `
router id ${o.address};
log stderr all;
protocol device {}
${statics}
protocol bgp ${o.protocol ?? 'tor'} {
  local ${o.address} port ${o.port} as ${o.as}; neighbor ${o.neighbor} as ${o.neighborAs}; strict bind; passive on;${o.multihop === false ? '' : ' multihop;'}
  ${o.extra ?? ''} connect retry time 1; connect delay time 1; error wait time 1, 2;
  ipv4 { import ${o.import ?? 'all'}; export ${o.export ?? (statics ? 'where proto = "s4"' : 'none')}; };
}
`;
}
