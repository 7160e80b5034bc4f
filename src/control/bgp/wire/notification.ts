// NOTIFICATION (RFC 4271 section 4.5), KEEPALIVE and ROUTE-REFRESH (RFC 2918) messages.
import { BgpError, ErrCode, MsgType } from './constants';
import { frame } from './framing';

export interface NotificationMessage {
  type: MsgType.Notification;
  code: number;
  subcode: number;
  data: Buffer;
}

export interface KeepaliveMessage {
  type: MsgType.Keepalive;
}

export interface RouteRefreshMessage {
  type: MsgType.RouteRefresh;
  afi: number;
  safi: number;
}

export function encodeNotification(code: number, subcode: number, data: Buffer = Buffer.alloc(0)): Buffer {
  return frame(MsgType.Notification, Buffer.concat([Buffer.from([code, subcode]), data.subarray(0, 4096 - 21)]));
}

export function decodeNotification(body: Buffer): NotificationMessage {
  return { type: MsgType.Notification, code: body[0], subcode: body[1], data: Buffer.from(body.subarray(2)) };
}

export const KEEPALIVE: Buffer = frame(MsgType.Keepalive, Buffer.alloc(0));

export function encodeRouteRefresh(afi: number, safi: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(afi, 0);
  b[3] = safi;
  return frame(MsgType.RouteRefresh, b);
}

export function decodeRouteRefresh(body: Buffer): RouteRefreshMessage {
  if (body.length !== 4) throw new BgpError(ErrCode.RouteRefresh, 1, Buffer.from(body), `ROUTE-REFRESH body of ${body.length} octets`);
  return { type: MsgType.RouteRefresh, afi: body.readUInt16BE(0), safi: body[3] };
}
