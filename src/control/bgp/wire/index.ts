// The BGP wire codec: framing, the five message types, and decodeMessage() for a framed message.
import { HEADER_LEN, MsgType } from './constants';
import { HeaderView } from './framing';
import { decodeOpen, OpenMessage } from './open';
import { decodeNotification, decodeRouteRefresh, KeepaliveMessage, NotificationMessage, RouteRefreshMessage } from './notification';
import { decodeUpdate, UpdateContext, UpdateMessage } from './update';

export * from './constants';
export * from './framing';
export * from './open';
export * from './update';
export * from './notification';
export * from './prefix';

export type BgpMessage = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

/**
 * Decodes one whole message as the Framer yields it (header already checked). Throws BgpError
 * when the RFCs say to answer with a NOTIFICATION.
 */
export function decodeMessage(msg: Buffer, ctx: UpdateContext): BgpMessage {
  const body = msg.subarray(HEADER_LEN);
  switch (new HeaderView(msg).type()) {
    case MsgType.Open:
      return decodeOpen(body);
    case MsgType.Update:
      return decodeUpdate(body, ctx);
    case MsgType.Notification:
      return decodeNotification(body);
    case MsgType.Keepalive:
      return { type: MsgType.Keepalive };
    default:
      return decodeRouteRefresh(body);
  }
}
