// BGP message framing over a TCP byte stream: a typed view of the 19-octet header, and a framer
// that cuts whole messages out of reads that may end mid-message or carry several messages.
import { BgpError, ErrCode, HEADER_LEN, HeaderSub, MAX_MESSAGE_LEN, MsgType } from './constants';

/** Zero-copy view of a message header (RFC 4271 section 4.1). */
export class HeaderView {
  constructor(private readonly b: Buffer) {}
  markerOk(): boolean {
    for (let i = 0; i < 16; i++) if (this.b[i] !== 0xff) return false;
    return true;
  }
  length(): number {
    return this.b.readUInt16BE(16);
  }
  type(): number {
    return this.b[18];
  }
}

/** The whole message (header included) with the body of `body` and type `type`. */
export function frame(type: MsgType, body: Buffer): Buffer {
  const len = HEADER_LEN + body.length;
  if (len > MAX_MESSAGE_LEN) throw new Error(`BGP message of ${len} octets exceeds ${MAX_MESSAGE_LEN}`);
  const out = Buffer.alloc(len);
  out.fill(0xff, 0, 16);
  out.writeUInt16BE(len, 16);
  out[18] = type;
  body.copy(out, HEADER_LEN);
  return out;
}

function lengthData(len: number): Buffer {
  const d = Buffer.alloc(2);
  d.writeUInt16BE(len);
  return d;
}

/** Smallest legal length per message type (RFC 4271 section 6.1). */
const MIN_LEN: Record<number, number> = {
  [MsgType.Open]: 29,
  [MsgType.Update]: 23,
  [MsgType.Notification]: 21,
  [MsgType.Keepalive]: 19,
  [MsgType.RouteRefresh]: 23,
};

/**
 * Collects stream chunks and yields complete messages. Header errors (marker, length, type) throw
 * the BgpError the RFC answers with; after that the stream is unusable and the session closes.
 */
export class Framer {
  private pending: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): void {
    this.pending.push(chunk);
    this.size += chunk.length;
  }

  /** The next whole message (header + body), or null until more bytes arrive. */
  next(): Buffer | null {
    if (this.size < HEADER_LEN) return null;
    if (this.pending.length > 1) {
      this.pending = [Buffer.concat(this.pending, this.size)];
    }
    const buf = this.pending[0];
    const h = new HeaderView(buf);
    if (!h.markerOk()) throw new BgpError(ErrCode.Header, HeaderSub.NotSynchronized);
    const len = h.length();
    const type = h.type();
    if (len < HEADER_LEN || len > MAX_MESSAGE_LEN) throw new BgpError(ErrCode.Header, HeaderSub.BadLength, lengthData(len), `length ${len}`);
    const min = MIN_LEN[type];
    if (min === undefined) throw new BgpError(ErrCode.Header, HeaderSub.BadType, Buffer.from([type]), `type ${type}`);
    if (len < min || (type === MsgType.Keepalive && len !== HEADER_LEN)) {
      throw new BgpError(ErrCode.Header, HeaderSub.BadLength, lengthData(len), `length ${len} for message type ${type}`);
    }
    if (this.size < len) return null;
    const msg = Buffer.from(buf.subarray(0, len));
    const rest = buf.subarray(len);
    this.pending = rest.length ? [rest] : [];
    this.size = rest.length;
    return msg;
  }
}
