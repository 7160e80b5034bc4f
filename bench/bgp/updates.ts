// UPDATE processing rate: a sending BIRD 2 originates N prefixes (static protocol, the first N
// IPv4 prefixes of data/asn/asn-ipv4-prefixes.txt.gz) and sends the full table, over iBGP on
// loopback, to (a) our speaker in this process and (b) a receiving BIRD, in the same run. The
// sender's two protocols start disabled; each sample enables one of them, so the receiver under
// test gets the table alone, and disables it again. The order alternates per round (ABBA), which
// spreads load from other work on the machine over both sides. A warm-up round of each, not
// recorded, comes first.
//
// Per sample: from the session reaching Established on the receiver to
//  - podway: the last prefix received (status().prefixesReceived = N, polled every 2 ms) and the
//    table installed: the first 'routes' event after which learned() holds all N (that event is
//    debounced by 100 ms inside the speaker, so "installed" includes up to 100 ms of that wait);
//  - BIRD: `show protocols all` on the receiver reporting N imported (polled with birdc every
//    ~10 ms; Established is likewise the first poll that saw it).
// Also the CPU time (user + system) of the receiver and of the sending BIRD over each sample
// (podway: this whole process, the bench's polling included; BIRD: /proc/PID/stat, 10 ms ticks).
// When the sender's CPU time is close to the wall time, the sender sets the pace and the
// receivers' CPU time is the fairer comparison.
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BgpSpeaker } from '../../src/control/bgp/speaker';
import { Bird, birdBgpConfig, loopbackNet, randomPort, startBird } from '../../test/bgp/bird';

export interface UpdateSample {
  receiver: 'podway' | 'bird';
  establishedToLastMs: number;
  establishedToInstalledMs?: number;
  prefixes: number;
  /** CPU time (user + system) the receiver and the sending BIRD used while the sample ran. */
  receiverCpuMs: number;
  senderCpuMs: number;
}

/** User + system CPU time of a process, from /proc/PID/stat (clock ticks, 100 per second). */
function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14 and 15)
}
const selfCpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

export function asnPrefixes(n: number): string[] {
  const file = join(__dirname, '..', '..', '..', 'data', 'asn', 'asn-ipv4-prefixes.txt.gz');
  const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n');
  const out: string[] = [];
  for (const l of lines) {
    const p = l.split(' ')[0];
    if (p) out.push(p);
    if (out.length === n) break;
  }
  if (out.length < n) throw new Error(`${file}: only ${out.length} prefixes, ${n} asked`);
  return out;
}

async function birdImported(bird: Bird, proto: string): Promise<{ up: boolean; imported: number }> {
  const t = await bird.protocol(proto);
  const up = /\bEstablished\b/.test(t);
  const m = /Routes:\s+(\d+) imported/.exec(t);
  return { up, imported: m ? Number(m[1]) : 0 };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms: number, everyMs: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return performance.now();
    if (Date.now() > deadline) throw new Error(`bench:bgp timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export async function runUpdateBench(opts: { prefixes: number; rounds: number; log: (s: string) => void }): Promise<UpdateSample[]> {
  const ip = loopbackNet();
  const senderPort = randomPort();
  const podwayPort = senderPort + 1;
  const receiverPort = senderPort + 2;
  const AS = 64512;
  const statics = asnPrefixes(opts.prefixes);
  const senderConf = birdBgpConfig({
    address: ip(1), port: senderPort, as: AS, statics,
    neighbors: [
      { name: 'topodway', address: ip(2), port: podwayPort, as: AS, extra: 'disabled;' },
      { name: 'tobird', address: ip(3), port: receiverPort, as: AS, extra: 'disabled;' },
    ],
  });
  // The receiver exports nothing back (its static protocol is empty).
  const receiverConf = birdBgpConfig({ address: ip(3), port: receiverPort, as: AS, statics: [], neighbors: [{ name: 'sender', address: ip(1), port: senderPort, as: AS }] });
  let sender: Bird | undefined;
  let receiver: Bird | undefined;
  const speaker = new BgpSpeaker({ localAs: AS, routerId: ip(2), listenAddress: ip(2), listenPort: podwayPort, connectRetrySeconds: 1, log: () => undefined });
  const samples: UpdateSample[] = [];
  try {
    opts.log(`starting the sending BIRD with ${statics.length} static prefixes`);
    sender = await startBird(senderConf);
    receiver = await startBird(receiverConf);
    speaker.setPeers([{ address: ip(1), asNumber: AS, port: senderPort, localAddress: ip(2), holdTimeSeconds: 30, passive: true, description: 'sender' }]);
    await speaker.start();
    // BIRD's static protocol has the table once `show route protocol s4 count` says so.
    await until('the sender\'s static table', async () => new RegExp(`\\b${statics.length} of ${statics.length} routes`).test(await sender!.birdc('show', 'route', 'protocol', 's4', 'count')), 120000, 200);

    const measurePodway = async (): Promise<UpdateSample> => {
      const st = () => speaker.status()[0];
      let installedAt = 0;
      const onRoutes = () => { if (!installedAt && speaker.learned().length === statics.length) installedAt = performance.now(); };
      speaker.on('routes', onRoutes);
      try {
        const cpu0 = selfCpuMs();
        const send0 = procCpuMs(sender!.pid());
        await sender!.birdc('enable', 'topodway');
        const up = await until('podway Established', () => st()?.state === 'Established', 30000, 2);
        const last = await until('podway: all prefixes received', () => st().prefixesReceived === statics.length, 120000, 2);
        await until('podway: all installed', () => installedAt > 0, 30000, 5);
        const receiverCpuMs = selfCpuMs() - cpu0;
        const senderCpuMs = procCpuMs(sender!.pid()) - send0;
        await sender!.birdc('disable', 'topodway');
        await until('podway emptied', () => st()?.state !== 'Established' && speaker.learned().length === 0, 30000, 20);
        return { receiver: 'podway', establishedToLastMs: last - up, establishedToInstalledMs: installedAt - up, prefixes: statics.length, receiverCpuMs, senderCpuMs };
      } finally {
        speaker.off('routes', onRoutes);
      }
    };
    const measureBird = async (): Promise<UpdateSample> => {
      const cpu0 = procCpuMs(receiver!.pid());
      const send0 = procCpuMs(sender!.pid());
      await sender!.birdc('enable', 'tobird');
      const up = await until('BIRD Established', async () => (await birdImported(receiver!, 'sender')).up, 30000, 2);
      const last = await until('BIRD: all prefixes imported', async () => (await birdImported(receiver!, 'sender')).imported === statics.length, 120000, 2);
      const receiverCpuMs = procCpuMs(receiver!.pid()) - cpu0;
      const senderCpuMs = procCpuMs(sender!.pid()) - send0;
      await sender!.birdc('disable', 'tobird');
      await until('BIRD emptied', async () => (await birdImported(receiver!, 'sender')).imported === 0, 30000, 50);
      return { receiver: 'bird', establishedToLastMs: last - up, prefixes: statics.length, receiverCpuMs, senderCpuMs };
    };
    // One unrecorded round of each first: the sender's first export of the table is slower.
    for (const m of [measurePodway, measureBird]) {
      const s = await m();
      opts.log(`warm-up: ${s.receiver} ${s.establishedToLastMs.toFixed(0)} ms to the last prefix`);
    }
    for (let r = 0; r < opts.rounds; r++) {
      const order = r % 2 === 0 ? [measurePodway, measureBird] : [measureBird, measurePodway];
      for (const m of order) {
        const s = await m();
        opts.log(`round ${r + 1}: ${s.receiver} ${s.establishedToLastMs.toFixed(0)} ms to the last prefix${s.establishedToInstalledMs !== undefined ? `, ${s.establishedToInstalledMs.toFixed(0)} ms to learned()` : ''}; CPU receiver ${s.receiverCpuMs.toFixed(0)} ms, sender ${s.senderCpuMs.toFixed(0)} ms`);
        samples.push(s);
        await sleep(500);
      }
    }
    return samples;
  } finally {
    await speaker.stop();
    await sender?.stop();
    await receiver?.stop();
  }
}
