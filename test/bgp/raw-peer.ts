// A hand-driven BGP peer for tests: a TCP connection to the speaker from a chosen loopback
// address, a framer for what comes back, and helpers to send raw bytes and await messages.
import { connect, Socket } from 'node:net';
import { BgpMessage, decodeMessage, encodeOpen, Framer, KEEPALIVE, MsgType, UpdateContext } from '../../src/control/bgp/wire';

export class RawPeer {
  readonly messages: BgpMessage[] = [];
  /** What the speaker sent that our own decoder refused (a test failure when not empty). */
  readonly undecodable: string[] = [];
  closed = false;
  private readonly framer = new Framer();
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket, private readonly ctx: UpdateContext) {
    socket.on('data', b => {
      this.framer.push(b);
      try {
        for (let m = this.framer.next(); m; m = this.framer.next()) this.messages.push(decodeMessage(m, this.ctx));
      } catch (e) {
        this.undecodable.push((e as Error).message);
      }
      this.wake();
    });
    socket.on('close', () => { this.closed = true; this.wake(); });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static connect(host: string, port: number, localAddress: string, ctx: UpdateContext = { fourOctetAs: true, ebgp: false }): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port, localAddress });
      s.once('error', reject);
      s.once('connect', () => { s.off('error', reject); resolve(new RawPeer(s, ctx)); });
    });
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** Sends OPEN (4-octet AS capability, IPv4+IPv6; with `gracefulRestartSeconds`, graceful
   * restart for both) and the KEEPALIVE that confirms the speaker's. */
  async establish(asn: number, routerId: string, holdTime = 90, gracefulRestartSeconds?: number): Promise<void> {
    await this.next(MsgType.Open);
    const families = [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }];
    const gracefulRestart = gracefulRestartSeconds === undefined ? undefined
      : { restarting: false, time: gracefulRestartSeconds, families: families.map(f => ({ ...f, forwarding: true })) };
    this.send(encodeOpen(asn, holdTime, routerId, { multiprotocol: families, routeRefresh: true, fourOctetAs: asn, gracefulRestart, unknown: [] }));
    await this.next(MsgType.Keepalive);
    this.send(KEEPALIVE);
  }

  /** The first not yet consumed message of `type` (waits up to `ms`). */
  async next<T extends MsgType>(type: T, ms = 10000): Promise<Extract<BgpMessage, { type: T }>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.messages.findIndex(m => m.type === type);
      if (i >= 0) return this.messages.splice(i, 1)[0] as Extract<BgpMessage, { type: T }>;
      if (this.closed) throw new Error(`connection closed before a message of type ${type} (have ${this.messages.map(m => m.type).join(',')})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message of type ${type} within ${ms} ms`);
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Resolves when the speaker has closed the connection (or after `ms`, then false). */
  async waitClosed(ms = 10000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}
