// The CNI plugin executable's entry point (installed as a `podway` shim in the CNI bin directory,
// see install.ts): the CNI environment and the network config on stdin in, a result or an error on
// stdout, exit status 0 or 1.
import { readFileSync, writeSync } from 'node:fs';
import { runPlugin } from './plugin';

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (e) {
    // No stdin at all (a closed descriptor): the same as an empty config.
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN' || (e as NodeJS.ErrnoException).code === 'EBADF') return '';
    throw e;
  }
}

async function main(): Promise<void> {
  const out = await runPlugin(process.env, readStdin());
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
