// cli/address-store-thread.ts: the Node address store's thread ending with no call waiting (here
// terminated after its first answer) is logged, not silent; the end close() asks for is not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { NodeAddressStoreThread } from '../../src/cli/address-store-thread';
import { createLogger } from '../../src/observe/log';
import { until } from '../helpers/until';

test('a thread that ends with no call waiting is logged (warn, naming the node); close() is not', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), `podway-revfixrun-${process.pid}-`));
  const lines: string[] = [];
  const log = createLogger({ human: false, write: (s) => lines.push(s) });
  const store = new NodeAddressStoreThread({ kind: 'embedded', dir }, `revfixrun-${process.pid}`, log);
  try {
    await store.stored().catch(() => undefined); // starts the thread; answered either way
    const w = (store as unknown as { worker: Worker | null }).worker;
    assert.ok(w, 'the thread started');
    await w!.terminate();
    assert.ok(await until(() => lines.length > 0, 5000), 'the end logged');
    const l = JSON.parse(lines[0]!);
    assert.is(l.level, 'warn');
    assert.is(l.node, `revfixrun-${process.pid}`);
    assert.match(l.msg, /the Node address store's thread ended/);
    await store.stored().catch(() => undefined); // a new thread
    await store.close();
    await new Promise((r) => setTimeout(r, 200));
    assert.is(lines.length, 1, 'close() not logged');
  } finally {
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
