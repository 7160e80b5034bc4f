/**
 * systemd's notify protocol for `podway run` (Type=notify, WatchdogSec=; docs/running.md, "Running as
 * a service"): with $NOTIFY_SOCKET set (systemd sets it for a Type=notify unit) podway sends
 *   READY=1      once, when it first turns ready (the moment /readyz first answers 200: the same
 *                Health.report), so `systemctl start` and units ordered After= it wait for forwarding;
 *   STATUS=...   a short line whenever it changes (`systemctl status` shows it): the start phase,
 *                "ready", or the first reason for not being ready;
 *   STOPPING=1   at SIGTERM/SIGINT, before the stop;
 *   WATCHDOG=1   every WATCHDOG_USEC/2 when systemd asks for it (WatchdogSec=), from a timer on the
 *                main thread: a main thread that hangs (the forwarding thread, the control socket)
 *                stops sending and systemd restarts podway.
 * Without NOTIFY_SOCKET nothing is sent and nothing runs. The datagram goes out through the addon
 * (native/notify.c): Node has no AF_UNIX datagram socket. A send that fails is logged once per
 * error text (systemd gone, a socket that is not one) and never stops podway.
 */
export interface NotifyLog {
  info(m: string): void;
  warn(m: string): void;
}

export interface NotifyState {
  ready: boolean;
  /** The STATUS= line: short, one line. */
  status: string;
}

type Send = (socket: string, text: string) => void;

/** Status lines longer than this are cut (systemctl status shows one line). */
const STATUS_MAX = 200;

export class SystemdNotifier {
  private sentReady = false;
  private lastStatus = '';
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private readonly failed = new Set<string>();

  private constructor(
    readonly socket: string,
    /** WATCHDOG=1 period in ms (half of WATCHDOG_USEC), or null when systemd asks for none. */
    readonly watchdogMs: number | null,
    private readonly send: Send,
    private readonly log: NotifyLog,
  ) {}

  /**
   * The notifier $NOTIFY_SOCKET asks for, or null without one. NOTIFY_SOCKET, WATCHDOG_USEC and
   * WATCHDOG_PID are taken out of `env` (as sd_notify's unset_environment): the worker threads and
   * the processes podway starts (ip, nft, BIRD's tools) must not notify in its name.
   */
  static fromEnv(env: NodeJS.ProcessEnv, log: NotifyLog, send?: Send): SystemdNotifier | null {
    const socket = env.NOTIFY_SOCKET;
    const usec = env.WATCHDOG_USEC;
    const wpid = env.WATCHDOG_PID;
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
    if (!socket) return null;
    if (!socket.startsWith('/') && !socket.startsWith('@')) {
      log.warn(`NOTIFY_SOCKET ${JSON.stringify(socket)} is neither an absolute path nor an @abstract name: not notifying systemd`);
      return null;
    }
    let watchdogMs: number | null = null;
    if (usec !== undefined && usec !== '') {
      const n = Number(usec);
      // WATCHDOG_PID names the process systemd watches; another's (a wrapper's) is not ours to feed
      if (!Number.isSafeInteger(n) || n <= 0) log.warn(`WATCHDOG_USEC ${JSON.stringify(usec)} is not a positive integer: no watchdog keep-alives`);
      else if (wpid !== undefined && wpid !== '' && Number(wpid) !== process.pid) log.warn(`WATCHDOG_PID ${wpid} is not this process (${process.pid}): no watchdog keep-alives`);
      else watchdogMs = Math.max(1, Math.floor(n / 2000));
    }
    const sender = send ?? ((s: string, t: string) => (require('../dataplane/native') as typeof import('../dataplane/native')).nativeAddon().sdNotify(s, t));
    return new SystemdNotifier(socket, watchdogMs, sender, log);
  }

  /** Sends `text`; false when the send failed (logged once per error). */
  notify(text: string): boolean {
    try {
      this.send(this.socket, text);
      return true;
    } catch (e) {
      const m = (e as Error).message;
      if (!this.failed.has(m)) {
        this.failed.add(m);
        this.log.warn(`systemd notify socket ${this.socket}: ${m} (${text.split('\n')[0]} not sent)`);
      }
      return false;
    }
  }

  /**
   * Starts the keep-alives (with WATCHDOG_USEC) and a look at `state` every `everyMs`: READY=1 the
   * first time it is ready, STATUS= when its line changes. A look still under way is not doubled.
   */
  start(state: () => Promise<NotifyState>, everyMs = 1000): void {
    if (this.watchdogMs !== null) {
      this.notify('WATCHDOG=1');
      this.watchdogTimer = setInterval(() => { if (!this.stopped) this.notify('WATCHDOG=1'); }, this.watchdogMs);
      this.watchdogTimer.unref();
    }
    const look = async () => {
      if (this.polling || this.stopped) return;
      this.polling = true;
      try {
        const s = await state();
        if (!this.stopped) this.update(s);
      } catch {
        /* the next look tries again */
      } finally {
        this.polling = false;
      }
    };
    void look();
    this.timer = setInterval(() => void look(), everyMs);
    this.timer.unref();
  }

  /** READY=1 once `s` is ready (with its STATUS=), STATUS= when the line changed. */
  update(s: NotifyState): void {
    const status = s.status.replace(/\s*\n\s*/g, '; ').slice(0, STATUS_MAX);
    const lines: string[] = [];
    if (s.ready && !this.sentReady) lines.push('READY=1');
    if (status !== this.lastStatus) lines.push(`STATUS=${status}`);
    if (lines.length === 0) return;
    if (!this.notify(lines.join('\n'))) return; // tried again at the next look
    if (s.ready && !this.sentReady) {
      this.sentReady = true;
      this.log.info(`told systemd READY=1 (${this.socket})`);
    }
    this.lastStatus = status;
  }

  /** STOPPING=1 (and why); no more READY, STATUS or keep-alives after it. */
  stopping(why: string): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.notify(`STOPPING=1\nSTATUS=${why.slice(0, STATUS_MAX)}`);
  }

  /** Timers off (the process ends). */
  close(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
  }
}
