// The CNI plugin executable's entry point (installed as a `podway` shim in the CNI bin directory,
// see install.ts): the CNI environment and the network config on stdin in, a result or an error on
// stdout, exit status 0 or 1.
//
// Before plugin.ts (and the etcd client, zod) is loaded, the process takes one of the host's
// concurrency slots (slots.ts) and keeps it until it exits: at most concurrency_limit plugin
// processes do their heavy work at once; the others wait asleep.
import { readFileSync, writeSync } from 'node:fs';
import { DEFAULT_IPAM_LOCK_FILE, DEFAULT_IPAM_LOCK_TIMEOUT_MS, parseStdin } from './config';
import { SLOT_ENV, slotOptionsOf, takeSlot } from './slots';

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (e) {
    // No stdin at all (a closed descriptor): the same as an empty config.
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN' || (e as NodeJS.ErrnoException).code === 'EBADF') return '';
    throw e;
  }
}

/**
 * The event loop emptied before the verb answered: Node would exit 0 with nothing on stdout,
 * which a runtime reads as success. Said as an error instead (code 999), never silent. (Seen with
 * etcd stopped mid-ADD, when closing the etcd connection awaited an HTTP/2 'close' event that never
 * came: etcd-lite.ts Connection.close, fixed; kept for any other such await.)
 */
function answerIfLoopEmpties(): void {
  process.once('beforeExit', () => {
    writeAll(JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: `podway CNI plugin: ${process.env.CNI_COMMAND ?? '?'} ${process.env.CNI_CONTAINERID ?? ''} ended without an answer (nothing left to wait for: a datastore connection gone under it?); stderr has what it said` }) + '\n');
    process.exit(1);
  });
}

async function main(): Promise<void> {
  answerIfLoopEmpties();
  // Parsed once here; the slot, the verb and a delegated IPAM plugin's version fallback read the same value.
  const stdin = parseStdin(readStdin());
  // VERSION loads nothing heavy; a plugin run by a slot holder (a delegated IPAM plugin) has its parent's.
  if (process.env.CNI_COMMAND !== 'VERSION' && !process.env[SLOT_ENV]) {
    const s = await takeSlot(slotOptionsOf(stdin.json, { ipamLockFile: DEFAULT_IPAM_LOCK_FILE, timeoutMs: DEFAULT_IPAM_LOCK_TIMEOUT_MS }));
    if (s.warning !== null) process.stderr.write(`${s.warning}\n`);
    process.env[SLOT_ENV] = s.slot === null ? 'none' : `${s.slot}`;
  }
  const { runPlugin } = require('./plugin') as typeof import('./plugin');
  const out = await runPlugin(process.env, stdin);
  // Written synchronously so that exiting cannot cut the result short on a pipe.
  if (out.stdout !== '') writeAll(out.stdout);
  process.exit(out.exitCode);
}

function writeAll(text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

main().catch((e) => {
  writeAll(JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: `podway CNI plugin: ${(e as Error)?.message ?? e}` }) + '\n');
  process.exit(1);
});
