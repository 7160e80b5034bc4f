/**
 * A tiny TCP peer for the end-to-end tests (run inside a pod namespace with `ip netns exec`):
 *   node tcp-peer.js recv <ip> <port> [mark] listen, print "listening", (with a mark) print "got MARK"
 *                                           once MARK bytes were read, then after the sender closes
 *                                           print one JSON line {bytes, sha256, peer} and exit
 *   node tcp-peer.js send <ip> <port> <n> [local-port]
 *                                           send n random bytes (from local-port if given: a flow
 *                                           a test steers to one worker), print {bytes, sha256}, exit
 *   node tcp-peer.js send-pause <ip> <port> <n1> <n2> <file>
 *                                           send n1 random bytes, print "paused" once they were
 *                                           handed to the kernel and 2 s passed (acknowledged on a
 *                                           lab's veths), wait for <file> to exist, send n2 more
 *                                           at once, print {bytes, sha256} of all, exit
 * Both sides give up after 60 s (PEER_TIMEOUT_S) so a broken path never hangs a test.
 */
import * as net from 'node:net';
import { existsSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';

const [mode, host, portText, sizeText] = process.argv.slice(2);
const port = Number(portText);
setTimeout(() => {
  process.stderr.write(`tcp-peer ${mode}: timed out\n`);
  process.exit(3);
}, Number(process.env.PEER_TIMEOUT_S ?? 60) * 1000).unref();

if (mode === 'recv') {
  const mark = sizeText === undefined ? Infinity : Number(sizeText);
  let marked = false;
  const server = net.createServer((c) => {
    const peer = `${c.remoteAddress}:${c.remotePort}`;
    const h = createHash('sha256');
    let bytes = 0;
    c.on('data', (d) => {
      h.update(d);
      bytes += d.length;
      if (!marked && bytes >= mark) {
        marked = true;
        process.stdout.write(`got ${mark}\n`);
      }
    });
    c.on('end', () => {
      process.stdout.write(JSON.stringify({ bytes, sha256: h.digest('hex'), peer }) + '\n');
      c.end();
      server.close();
    });
    c.on('error', (e) => {
      process.stderr.write(`tcp-peer recv: ${e.message}\n`);
      process.exit(2);
    });
  });
  server.listen(port, host, () => process.stdout.write('listening\n'));
} else if (mode === 'send') {
  const data = randomBytes(Number(sizeText));
  const sha256 = createHash('sha256').update(data).digest('hex');
  const localPort = process.argv[6] === undefined ? undefined : Number(process.argv[6]);
  const c = net.createConnection({ host, port, localPort });
  c.on('connect', () => c.end(data));
  c.on('error', (e) => {
    process.stderr.write(`tcp-peer send: ${e.message}\n`);
    process.exit(2);
  });
  c.resume();
  c.on('close', () => process.stdout.write(JSON.stringify({ bytes: data.length, sha256 }) + '\n'));
} else if (mode === 'send-pause') {
  const [n2Text, file] = process.argv.slice(6);
  const a = randomBytes(Number(sizeText));
  const b = randomBytes(Number(n2Text));
  const sha256 = createHash('sha256').update(a).update(b).digest('hex');
  const c = net.createConnection({ host, port });
  c.on('connect', () => {
    c.write(a, () => {
      setTimeout(() => {
        process.stdout.write('paused\n');
        const wait = setInterval(() => {
          if (!existsSync(file)) return;
          clearInterval(wait);
          c.end(b);
        }, 20);
      }, 2000);
    });
  });
  c.on('error', (e) => {
    process.stderr.write(`tcp-peer send-pause: ${e.message}\n`);
    process.exit(2);
  });
  c.resume();
  c.on('close', () => process.stdout.write(JSON.stringify({ bytes: a.length + b.length, sha256 }) + '\n'));
} else {
  process.stderr.write('usage: tcp-peer recv|send <ip> <port> [bytes]\n');
  process.exit(1);
}
