/**
 * A tiny TCP peer for the end-to-end tests (run inside a pod namespace with `ip netns exec`):
 *   node tcp-peer.js recv <ip> <port>        listen, print "listening", then after the sender closes
 *                                           print one JSON line {bytes, sha256, peer} and exit
 *   node tcp-peer.js send <ip> <port> <n>   send n random bytes, print {bytes, sha256}, exit
 * Both sides give up after 60 s so a broken path never hangs a test.
 */
import * as net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const [mode, host, portText, sizeText] = process.argv.slice(2);
const port = Number(portText);
setTimeout(() => {
  process.stderr.write(`tcp-peer ${mode}: timed out\n`);
  process.exit(3);
}, 60_000).unref();

if (mode === 'recv') {
  const server = net.createServer((c) => {
    const peer = `${c.remoteAddress}:${c.remotePort}`;
    const h = createHash('sha256');
    let bytes = 0;
    c.on('data', (d) => {
      h.update(d);
      bytes += d.length;
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
  const c = net.createConnection({ host, port });
  c.on('connect', () => c.end(data));
  c.on('error', (e) => {
    process.stderr.write(`tcp-peer send: ${e.message}\n`);
    process.exit(2);
  });
  c.resume();
  c.on('close', () => process.stdout.write(JSON.stringify({ bytes: data.length, sha256 }) + '\n'));
} else {
  process.stderr.write('usage: tcp-peer recv|send <ip> <port> [bytes]\n');
  process.exit(1);
}
