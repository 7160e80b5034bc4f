// Numbers from the BGP RFCs, named once so the codec and the FSM say what they mean.

export const HEADER_LEN = 19;
/** RFC 4271: messages are at most 4096 octets (we do not negotiate RFC 8654 extended messages). */
export const MAX_MESSAGE_LEN = 4096;
/** RFC 6793: the 2-octet AS put in "My Autonomous System" and AS_PATH when the real AS needs 4. */
export const AS_TRANS = 23456;

export const enum MsgType {
  Open = 1,
  Update = 2,
  Notification = 3,
  Keepalive = 4,
  RouteRefresh = 5,
}

export const enum Afi {
  Ipv4 = 1,
  Ipv6 = 2,
}
export const SAFI_UNICAST = 1;

export const enum Cap {
  Multiprotocol = 1,
  RouteRefresh = 2,
  GracefulRestart = 64,
  FourOctetAs = 65,
}

export const enum AttrType {
  Origin = 1,
  AsPath = 2,
  NextHop = 3,
  Med = 4,
  LocalPref = 5,
  AtomicAggregate = 6,
  Aggregator = 7,
  Communities = 8,
  OriginatorId = 9,
  ClusterList = 10,
  MpReach = 14,
  MpUnreach = 15,
  As4Path = 17,
  As4Aggregator = 18,
}

export const enum AttrFlag {
  Optional = 0x80,
  Transitive = 0x40,
  Partial = 0x20,
  ExtendedLength = 0x10,
}

export const enum AsSegment {
  Set = 1,
  Sequence = 2,
  ConfedSequence = 3,
  ConfedSet = 4,
}

/** NOTIFICATION error codes (RFC 4271 section 4.5, RFC 7313 for 7). */
export const enum ErrCode {
  Header = 1,
  Open = 2,
  Update = 3,
  HoldTimerExpired = 4,
  Fsm = 5,
  Cease = 6,
  RouteRefresh = 7,
}

export const enum HeaderSub {
  NotSynchronized = 1,
  BadLength = 2,
  BadType = 3,
}

export const enum OpenSub {
  UnsupportedVersion = 1,
  BadPeerAs = 2,
  BadBgpId = 3,
  UnsupportedOptParam = 4,
  UnacceptableHoldTime = 6,
  UnsupportedCapability = 7,
}

export const enum UpdateSub {
  MalformedAttrList = 1,
  UnrecognizedWellKnown = 2,
  MissingWellKnown = 3,
  AttrFlags = 4,
  AttrLength = 5,
  InvalidOrigin = 6,
  InvalidNextHop = 8,
  OptionalAttr = 9,
  InvalidNetwork = 10,
  MalformedAsPath = 11,
}

/** Cease subcodes (RFC 4486). */
export const enum CeaseSub {
  MaxPrefixes = 1,
  AdminShutdown = 2,
  PeerDeconfigured = 3,
  AdminReset = 4,
  ConnectionRejected = 5,
  ConfigChange = 6,
  CollisionResolution = 7,
}

const CODE_NAMES: Record<number, string> = {
  1: 'Message header error',
  2: 'OPEN message error',
  3: 'UPDATE message error',
  4: 'Hold timer expired',
  5: 'Finite state machine error',
  6: 'Cease',
  7: 'ROUTE-REFRESH message error',
};

const SUB_NAMES: Record<string, string> = {
  '1/1': 'connection not synchronized',
  '1/2': 'bad message length',
  '1/3': 'bad message type',
  '2/1': 'unsupported version number',
  '2/2': 'bad peer AS',
  '2/3': 'bad BGP identifier',
  '2/4': 'unsupported optional parameter',
  '2/6': 'unacceptable hold time',
  '2/7': 'unsupported capability',
  '3/1': 'malformed attribute list',
  '3/2': 'unrecognized well-known attribute',
  '3/3': 'missing well-known attribute',
  '3/4': 'attribute flags error',
  '3/5': 'attribute length error',
  '3/6': 'invalid ORIGIN attribute',
  '3/8': 'invalid NEXT_HOP attribute',
  '3/9': 'optional attribute error',
  '3/10': 'invalid network field',
  '3/11': 'malformed AS_PATH',
  '6/1': 'maximum number of prefixes reached',
  '6/2': 'administrative shutdown',
  '6/3': 'peer de-configured',
  '6/4': 'administrative reset',
  '6/5': 'connection rejected',
  '6/6': 'other configuration change',
  '6/7': 'connection collision resolution',
  '6/8': 'out of resources',
  '7/1': 'invalid message length',
};

/** "Cease: administrative shutdown" style text for status lines and logs. */
export function describeError(code: number, subcode: number): string {
  const c = CODE_NAMES[code] ?? `error code ${code}`;
  const s = SUB_NAMES[`${code}/${subcode}`];
  return s ? `${c}: ${s}` : subcode ? `${c} (subcode ${subcode})` : c;
}

/**
 * An error the RFCs answer with a NOTIFICATION and a session reset. The codec throws it; the
 * session sends it and closes.
 */
export class BgpError extends Error {
  constructor(readonly code: number, readonly subcode: number, readonly data: Buffer = Buffer.alloc(0), detail?: string) {
    super(detail ? `${describeError(code, subcode)} (${detail})` : describeError(code, subcode));
  }
}
