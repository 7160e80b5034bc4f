/**
 * The spawner process (see spawner.ts): a small Node process started before podway maps any
 * packet ring, which runs the `ip` (and `nsenter`) commands podway needs and streams their output
 * back over IPC. Forking this process is cheap; forking podway itself, with a receive ring per pod
 * mapped, copies page tables for gigabytes and blocks the forwarding thread for tens of ms per
 * spawn (measured in bench/stall).
 *
 * Messages in:  {op:'spawn', id, file, args, input} | {op:'kill', id, signal}
 * Messages out: {ev:'spawn', id, pid} | {ev:'stdout'|'stderr', id, data} | {ev:'error', id, message}
 *               | {ev:'close', id, code, signal}
 */
import { spawn, ChildProcess } from 'node:child_process';

interface SpawnRequest { op: 'spawn'; id: number; file: string; args: string[]; input: string }
interface KillRequest { op: 'kill'; id: number; signal: NodeJS.Signals }

const children = new Map<number, ChildProcess>();
// A send after the parent died (kill -9) fails with EPIPE: with no callback that is an 'error'
// event, uncaught, and its stack trace landed in the node's JSON log. The parent is gone: end.
const send = (m: object): void => {
  if (process.connected) process.send?.(m, undefined, undefined, (e: Error | null) => { if (e) end(); });
};

process.on('message', (m: SpawnRequest | KillRequest) => {
  if (m.op === 'kill') {
    children.get(m.id)?.kill(m.signal);
    return;
  }
  // detached: each command in a session (and process group) of its own, so what a shell sends to
  // podway's process group (SIGHUP when the terminal of a `podway run ... &` closes, SIGINT from a
  // Ctrl-C) does not end an `ip monitor` under way: podway decides when its commands end (kill
  // by id, or end() below).
  const child = spawn(m.file, m.args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  children.set(m.id, child);
  child.once('spawn', () => send({ ev: 'spawn', id: m.id, pid: child.pid }));
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (data: string) => send({ ev: 'stdout', id: m.id, data }));
  child.stderr!.on('data', (data: string) => send({ ev: 'stderr', id: m.id, data }));
  child.stdin!.on('error', () => {}); // EPIPE from a child that exits early: its status says more
  child.on('error', (e) => send({ ev: 'error', id: m.id, message: e.message }));
  child.on('close', (code, signal) => {
    children.delete(m.id);
    send({ ev: 'close', id: m.id, code, signal });
  });
  child.stdin!.end(m.input);
});
// The parent went away (disconnect), or stops this helper (Spawner.close: SIGTERM): nothing left
// to do for it, and what runs for it ends too. (SIGTERM's default action ended this process alone,
// leaving a command under way, an `ip monitor` whose PID podway had not learnt yet, say, running
// on after podway's stop.)
function end(): void {
  for (const c of children.values()) c.kill('SIGKILL');
  process.exit(0);
}
process.on('disconnect', end);
process.on('SIGTERM', end);
// SIGHUP and SIGINT reach this helper with podway's process group (a closed terminal, a Ctrl-C):
// podway itself says what it does with them and stops this helper when it is done with it
// (SIGTERM, or the disconnect at its exit). Their default action ended it at once, leaving the
// commands it ran (in groups of their own) behind.
process.on('SIGHUP', () => {});
process.on('SIGINT', () => {});
