/**
 * A pcapng writer (draft-ietf-opsawg-pcapng): a section header, one Interface Description Block
 * per interface (named, so Wireshark and tshark show podway's port names) and Enhanced Packet
 * Blocks with microsecond timestamps and an optional comment. Little-endian, as the host writes it.
 * Every interface is Ethernet: libpcap (tcpdump) reads a file only if all its interfaces share one
 * link type.
 */

const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
export const LINKTYPE_ETHERNET = 1;

const OPT_END = 0;
const OPT_COMMENT = 1;
/** EPB epb_flags: a 32-bit word; bits 0-1 the direction (PcapDirection). */
const EPB_FLAGS = 2;
/** The packet's direction, as the EPB flags word carries it (tshark: frame.packet_flags_direction). */
export const PcapDirection = { UNKNOWN: 0, INBOUND: 1, OUTBOUND: 2 } as const;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_TSRESOL = 9;

const enc = new TextEncoder();

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Options block: each option is code, length, value padded to 4; then opt_endofopt. */
function options(opts: [number, Uint8Array][]): Uint8Array {
  if (opts.length === 0) return new Uint8Array(0);
  const size = opts.reduce((s, [, v]) => s + 4 + pad4(v.length), 0) + 4;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let p = 0;
  for (const [code, v] of opts) {
    dv.setUint16(p, code, true);
    dv.setUint16(p + 2, v.length, true);
    out.set(v, p + 4);
    p += 4 + pad4(v.length);
  }
  dv.setUint16(p, OPT_END, true);
  dv.setUint16(p + 2, 0, true);
  return out;
}

/** A block: type, total length, body, total length again. */
function block(type: number, body: Uint8Array): Uint8Array {
  const total = 12 + body.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, type, true);
  dv.setUint32(4, total, true);
  out.set(body, 8);
  dv.setUint32(total - 4, total, true);
  return out;
}

export function sectionHeader(app = 'podway'): Uint8Array {
  const opts = options([[SHB_USERAPPL, enc.encode(app)]]);
  const body = new Uint8Array(16 + opts.length);
  const dv = new DataView(body.buffer);
  dv.setUint32(0, BYTE_ORDER_MAGIC, true);
  dv.setUint16(4, 1, true); // major
  dv.setUint16(6, 0, true); // minor
  dv.setInt32(8, -1, true); // section length unknown (a stream)
  dv.setInt32(12, -1, true);
  body.set(opts, 16);
  return block(SHB, body);
}

/** tcpdump's default snaplen (libpcap's MAXIMUM_SNAPLEN): a whole 64 KiB TCP super-frame fits. */
export const PCAPNG_SNAPLEN = 262144;

export function interfaceDescription(name: string, linkType = LINKTYPE_ETHERNET, snapLen = PCAPNG_SNAPLEN): Uint8Array {
  const opts = options([[IF_NAME, enc.encode(name)], [IF_TSRESOL, Uint8Array.of(6)]]);
  const body = new Uint8Array(8 + opts.length);
  const dv = new DataView(body.buffer);
  dv.setUint16(0, linkType, true);
  dv.setUint16(2, 0, true);
  dv.setUint32(4, snapLen, true);
  body.set(opts, 8);
  return block(IDB, body);
}

export function enhancedPacket(ifaceId: number, tsMicros: number, data: Uint8Array, origLen = data.length, comment = '', direction = 0): Uint8Array {
  const o: [number, Uint8Array][] = comment ? [[OPT_COMMENT, enc.encode(comment)]] : [];
  if (direction !== 0) o.push([EPB_FLAGS, Uint8Array.of(direction & 3, 0, 0, 0)]);
  const opts = options(o);
  const body = new Uint8Array(20 + pad4(data.length) + opts.length);
  const dv = new DataView(body.buffer);
  dv.setUint32(0, ifaceId, true);
  dv.setUint32(4, Math.floor(tsMicros / 2 ** 32), true);
  dv.setUint32(8, tsMicros % 2 ** 32, true);
  dv.setUint32(12, data.length, true);
  dv.setUint32(16, origLen, true);
  body.set(data, 20);
  body.set(opts, 20 + pad4(data.length));
  return block(EPB, body);
}

/**
 * A pcapng stream: the section header first, then an interface block the first time a name is
 * used (or up front for the names given), then packets.
 */
export class PcapngWriter {
  private readonly ids = new Map<string, number>();
  private started = false;

  constructor(
    private readonly write: (bytes: Uint8Array) => void,
    /** Every interface's snaplen: no packet of the file is longer. */
    private readonly snaplen = PCAPNG_SNAPLEN,
  ) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.write(sectionHeader());
  }

  /** The interface id for `name`, writing its description block the first time. */
  iface(name: string): number {
    this.start();
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(name, id);
      this.write(interfaceDescription(name, LINKTYPE_ETHERNET, this.snaplen));
    }
    return id;
  }

  /** `direction`: PcapDirection (inbound at rx/decap, outbound at tx; none at route/drop). */
  packet(iface: string, tsMicros: number, data: Uint8Array, origLen = data.length, comment = '', direction = 0): void {
    const id = this.iface(iface);
    this.write(enhancedPacket(id, tsMicros, data, origLen, comment, direction));
  }

  /** Write the section header even when nothing else comes (an empty but valid file). */
  begin(): void {
    this.start();
  }
}
