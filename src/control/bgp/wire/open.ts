// OPEN (RFC 4271 section 4.2) with the capabilities we speak (RFC 5492): multiprotocol (RFC 4760),
// route refresh (RFC 2918), graceful restart (RFC 4724) and 4-octet AS numbers (RFC 6793).
import { addressOctets, addressText } from './prefix';
import { AS_TRANS, BgpError, Cap, ErrCode, MsgType, OpenSub } from './constants';
import { frame } from './framing';

export interface AfiSafi {
  afi: number;
  safi: number;
}

export interface GracefulRestartCap {
  /** R bit: the sender has restarted and is re-learning routes. */
  restarting: boolean;
  /** Seconds the peer should keep our routes while we restart (12 bits). */
  time: number;
  /** Families whose forwarding state the sender preserves across the restart (F bit per family). */
  families: (AfiSafi & { forwarding: boolean })[];
}

export interface Capabilities {
  multiprotocol: AfiSafi[];
  routeRefresh: boolean;
  /** The sender's real AS when it speaks 4-octet AS numbers. */
  fourOctetAs?: number;
  gracefulRestart?: GracefulRestartCap;
  /** Capabilities we do not know; kept for logs, otherwise ignored (RFC 5492 section 3). */
  unknown: number[];
}

export interface OpenMessage {
  type: MsgType.Open;
  version: number;
  /** "My Autonomous System" as sent (AS_TRANS when the real AS needs 4 octets). */
  myAs: number;
  holdTime: number;
  routerId: string;
  caps: Capabilities;
}

/** The sender's AS: the 4-octet capability when present, else the 2-octet field. */
export function openAs(m: OpenMessage): number {
  return m.caps.fourOctetAs ?? m.myAs;
}

function capability(code: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([code, value.length]), value]);
}

export function encodeOpen(asn: number, holdTime: number, routerId: string, caps: Capabilities): Buffer {
  const parts: Buffer[] = [];
  for (const f of caps.multiprotocol) {
    const v = Buffer.alloc(4);
    v.writeUInt16BE(f.afi, 0);
    v[3] = f.safi;
    parts.push(capability(Cap.Multiprotocol, v));
  }
  if (caps.routeRefresh) parts.push(capability(Cap.RouteRefresh, Buffer.alloc(0)));
  if (caps.gracefulRestart) {
    const gr = caps.gracefulRestart;
    const v = Buffer.alloc(2 + 4 * gr.families.length);
    v.writeUInt16BE(((gr.restarting ? 0x8000 : 0) | (gr.time & 0x0fff)) >>> 0, 0);
    gr.families.forEach((f, i) => {
      v.writeUInt16BE(f.afi, 2 + 4 * i);
      v[4 + 4 * i] = f.safi;
      v[5 + 4 * i] = f.forwarding ? 0x80 : 0;
    });
    parts.push(capability(Cap.GracefulRestart, v));
  }
  if (caps.fourOctetAs !== undefined) {
    const v = Buffer.alloc(4);
    v.writeUInt32BE(caps.fourOctetAs >>> 0);
    parts.push(capability(Cap.FourOctetAs, v));
  }
  // One Capabilities optional parameter (type 2) per capability, as most speakers send them.
  const params = Buffer.concat(parts.map(c => Buffer.concat([Buffer.from([2, c.length]), c])));
  if (params.length > 255) throw new Error('OPEN optional parameters exceed 255 octets');
  const body = Buffer.alloc(10);
  body[0] = 4;
  body.writeUInt16BE(asn > 0xffff ? AS_TRANS : asn, 1);
  body.writeUInt16BE(holdTime, 3);
  addressOctets(routerId).copy(body, 5);
  body[9] = params.length;
  return frame(MsgType.Open, Buffer.concat([body, params]));
}

const openError = (sub: number, detail: string, data = Buffer.alloc(0)) => new BgpError(ErrCode.Open, sub, data, detail);

/** Decodes an OPEN body (after the header). Throws the OPEN error NOTIFICATION the RFC names. */
export function decodeOpen(body: Buffer): OpenMessage {
  if (body.length < 10) throw openError(0, 'OPEN shorter than 29 octets');
  const version = body[0];
  if (version !== 4) throw openError(OpenSub.UnsupportedVersion, `version ${version}`, Buffer.from([0, 4]));
  const myAs = body.readUInt16BE(1);
  const holdTime = body.readUInt16BE(3);
  if (holdTime === 1 || holdTime === 2) throw openError(OpenSub.UnacceptableHoldTime, `hold time ${holdTime}`);
  const routerIdNum = body.readUInt32BE(5);
  if (routerIdNum === 0) throw openError(OpenSub.BadBgpId, 'BGP identifier 0.0.0.0');
  const routerId = addressText(body.subarray(5, 9));
  const optLen = body[9];
  if (10 + optLen !== body.length) throw openError(0, `optional parameters length ${optLen} does not match the message`);
  const caps: Capabilities = { multiprotocol: [], routeRefresh: false, unknown: [] };
  let at = 10;
  while (at < body.length) {
    if (at + 2 > body.length) throw openError(0, 'optional parameter header overruns');
    const ptype = body[at];
    const plen = body[at + 1];
    const pend = at + 2 + plen;
    if (pend > body.length) throw openError(0, 'optional parameter overruns');
    if (ptype !== 2) throw openError(OpenSub.UnsupportedOptParam, `optional parameter type ${ptype}`);
    decodeCapabilities(body.subarray(at + 2, pend), caps);
    at = pend;
  }
  return { type: MsgType.Open, version, myAs, holdTime, routerId, caps };
}

function decodeCapabilities(b: Buffer, caps: Capabilities): void {
  let at = 0;
  while (at < b.length) {
    if (at + 2 > b.length) throw openError(0, 'capability header overruns');
    const code = b[at];
    const len = b[at + 1];
    const v = b.subarray(at + 2, at + 2 + len);
    if (v.length !== len) throw openError(0, `capability ${code} overruns`);
    at += 2 + len;
    switch (code) {
      case Cap.Multiprotocol:
        if (len !== 4) throw openError(0, `multiprotocol capability of length ${len}`);
        caps.multiprotocol.push({ afi: v.readUInt16BE(0), safi: v[3] });
        break;
      case Cap.RouteRefresh:
        caps.routeRefresh = true;
        break;
      case Cap.FourOctetAs:
        if (len !== 4) throw openError(0, `4-octet AS capability of length ${len}`);
        caps.fourOctetAs = v.readUInt32BE(0);
        break;
      case Cap.GracefulRestart: {
        if (len < 2 || (len - 2) % 4 !== 0) throw openError(0, `graceful restart capability of length ${len}`);
        const head = v.readUInt16BE(0);
        const families = [];
        for (let i = 2; i < len; i += 4) families.push({ afi: v.readUInt16BE(i), safi: v[i + 2], forwarding: (v[i + 3] & 0x80) !== 0 });
        caps.gracefulRestart = { restarting: (head & 0x8000) !== 0, time: head & 0x0fff, families };
        break;
      }
      default:
        caps.unknown.push(code);
    }
  }
}
