/**
 * Small peers for the natOutgoing tests (run in a namespace with `ip netns exec`). Every mode ends
 * on its own within its time limit, so a broken path never hangs a test.
 *   udp-echo <ip> <port> <seconds>            echo datagrams; print "ready", then "peer IP:PORT" per datagram
 *   tcp-echo <ip> <port> <seconds>            echo each connection; print "ready", then "peer IP:PORT" per connection
 *   udp-ask <ip> <port> <localPort> <ms>      one datagram from localPort (0: any), up to 3 tries;
 *                                             print {answered, local, from (the answer's source)}
 *   tcp-flows <ip> <port> <count> <ms>        open `count` connections at once, each sends its own line
 *                                             and waits for its echo, all held open until every one is
 *                                             answered (or time is up); print {ok, failed, errors}
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

const [mode, host, a, b, c] = process.argv.slice(2);
const port = Number(a);

function limit(ms: number): void {
  setTimeout(() => {
    process.stderr.write(`nat-peer ${mode}: time is up\n`);
    process.exit(3);
  }, ms).unref();
}

if (mode === 'udp-echo') {
  limit(Number(b) * 1000);
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (msg, r) => {
    process.stdout.write(`peer ${r.address}:${r.port}\n`);
    s.send(msg, r.port, r.address);
  });
  s.bind(port, host, () => process.stdout.write('ready\n'));
} else if (mode === 'tcp-echo') {
  limit(Number(b) * 1000);
  const server = net.createServer((conn) => {
    process.stdout.write(`peer ${conn.remoteAddress}:${conn.remotePort}\n`);
    conn.on('error', () => conn.destroy());
    conn.pipe(conn);
  });
  server.listen({ host, port, backlog: 2048 }, () => process.stdout.write('ready\n'));
} else if (mode === 'udp-ask') {
  const ms = Number(c);
  limit(ms + 2000);
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const msg = Buffer.from(`ask ${process.pid}`);
  let tries = 0;
  let timer: NodeJS.Timeout | null = null;
  let from = '';
  const done = (answered: boolean) => {
    if (timer) clearInterval(timer);
    process.stdout.write(JSON.stringify({ answered, local: s.address().port, tries, from }) + '\n');
    s.close();
  };
  // `from`: the answer's source (an unconnected socket takes a datagram from any address)
  s.on('message', (m, r) => { if (m.equals(msg)) { from = `${r.address}:${r.port}`; done(true); } });
  s.bind(Number(b), () => {
    const send = () => {
      if (tries++ >= 3) return done(false);
      s.send(msg, port, host);
    };
    send();
    timer = setInterval(send, Math.max(200, Math.floor(ms / 3)));
  });
} else if (mode === 'tcp-flows') {
  const count = Number(b);
  const ms = Number(c);
  limit(ms + 2000);
  let ok = 0;
  let failed = 0;
  const errors: string[] = [];
  const conns: net.Socket[] = [];
  const finish = () => {
    for (const x of conns) x.destroy();
    process.stdout.write(JSON.stringify({ ok, failed, errors: errors.slice(0, 5) }) + '\n');
    process.exit(0);
  };
  const giveUp = setTimeout(() => {
    failed = count - ok;
    errors.push(`${count - ok} unanswered after ${ms} ms`);
    finish();
  }, ms);
  for (let k = 0; k < count; k++) {
    const line = `flow ${k} of ${process.pid}\n`;
    const x = net.createConnection({ host, port });
    conns.push(x);
    let got = '';
    x.setEncoding('utf8');
    x.on('connect', () => x.write(line));
    x.on('data', (d: string) => {
      got += d;
      if (got.length >= line.length) {
        if (got === line) ok++;
        else {
          failed++;
          errors.push(`flow ${k}: echo differs`);
        }
        if (ok + failed === count) {
          clearTimeout(giveUp);
          finish();
        }
      }
    });
    x.on('error', (e) => {
      failed++;
      errors.push(`flow ${k}: ${e.message}`);
      if (ok + failed === count) {
        clearTimeout(giveUp);
        finish();
      }
    });
  }
} else {
  process.stderr.write('usage: nat-peer udp-echo|tcp-echo|udp-ask|tcp-flows ...\n');
  process.exit(1);
}
