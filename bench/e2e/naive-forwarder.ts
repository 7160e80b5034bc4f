/**
 * The per-packet forwarders podway is compared with (bench/e2e scenario 4): what a user would build
 * from npm parts. The node kernel delivers the pod's packets for remote pods to this process (an
 * `ip rule` makes the remote block local for traffic from the pod's interface); it reads them one
 * at a time with the `raw-socket` package and sends each one on:
 *   ipip  - through a raw protocol-4 socket (raw-socket), the kernel adding the outer header;
 *   vxlan - as a VXLAN payload (header + inner Ethernet + packet) with node's dgram.
 * Run inside the node's namespace: node naive-forwarder.js ipip|vxlan REMOTE_NODE_IP SRC_VTEP_MAC DST_VTEP_MAC
 */
import * as dgram from 'node:dgram';
// eslint-disable-next-line @typescript-eslint/no-var-requires
const raw = require('raw-socket');

const [mode, remote, srcMac, dstMac] = process.argv.slice(2);
if ((mode !== 'ipip' && mode !== 'vxlan') || !remote) {
  process.stderr.write('usage: naive-forwarder ipip|vxlan REMOTE_NODE_IP [SRC_VTEP_MAC DST_VTEP_MAC]\n');
  process.exit(2);
}
const macBytes = (s: string) => Buffer.from((s ?? '00:00:00:00:00:00').split(':').map((x) => parseInt(x, 16)));
const input = raw.createSocket({ protocol: raw.Protocol.UDP });
let forwarded = 0;
let errors = 0;
if (mode === 'ipip') {
  const out = raw.createSocket({ protocol: 4 });
  input.on('message', (buf: Buffer) => {
    out.send(buf, 0, buf.length, remote, (err: Error | null) => {
      if (err) errors++;
      else forwarded++;
    });
  });
} else {
  const out = dgram.createSocket('udp4');
  const header = Buffer.alloc(8 + 14);
  header[0] = 0x08; // I flag
  header.writeUIntBE(4096, 4, 3); // VNI
  macBytes(dstMac).copy(header, 8);
  macBytes(srcMac).copy(header, 14);
  header.writeUInt16BE(0x0800, 20);
  input.on('message', (buf: Buffer) => {
    out.send(Buffer.concat([header, buf]), 4789, remote, (err) => {
      if (err) errors++;
      else forwarded++;
    });
  });
}
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ forwarded, errors }) + '\n');
  process.exit(0);
});
process.stderr.write(`naive ${mode} forwarder to ${remote} ready\n`);
