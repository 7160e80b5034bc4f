// `podway ipam check` without --node on a machine where several podway control sockets are found in
// /run/podway (nodes of test clusters on other datastores, or sockets a killed run left behind):
// only a run on the datastore checked is the one meant. Sockets that do not answer, or answer for
// another datastore, are passed over (exit 0, said); it used to call the check incomplete (exit 5)
// for as long as two stale socket files were there. Run in a private mount namespace with a tmpfs
// over /run/podway, so the machine's own sockets are neither seen nor touched.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { writeFileSync } from 'node:fs';
import { BIN, ok, tempDir } from './cli-kit';
import { execBounded } from '../e2e/tools';

test('two sockets in /run/podway that do not answer: passed over, the check ends complete with exit 0, saying why this node\'s part was not checked', async () => {
  if (process.getuid?.() !== 0) throw new Error('needs root (a mount namespace)');
  const dir = tempDir();
  const store = `embedded:${path.join(dir, 'store')}`;
  const pool = path.join(dir, 'pool.yaml');
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.251.0.0/16}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
  // two listening sockets nobody answers on (as a stopped-but-not-exited or a foreign process would)
  const script = [
    'set -e',
    'mount -t tmpfs pw-ipam-sockets /run/podway',
    `python3 -c "import socket,time\nss=[]\nfor n in ('a.sock','b.sock'):\n  s=socket.socket(socket.AF_UNIX); s.bind('/run/podway/'+n); s.listen(4); ss.append(s)\nopen('/run/podway/ready','w').close()\ntime.sleep(30)" &`,
    'P=$!',
    'for i in $(seq 1 50); do [ -e /run/podway/ready ] && break; sleep 0.1; done',
    `set +e; ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} ipam check --datastore ${JSON.stringify(store)} --grace-period 0; echo "exit=$?"`,
    'kill $P',
  ].join('\n');
  const r = await execBounded('unshare', ['-m', 'sh', '-c', script], 60_000);
  assert.not.ok(r.timedOut, r.stderr);
  assert.match(r.stdout, 'not checked: no podway run here uses embedded:', r.stdout + r.stderr);
  assert.match(r.stdout, '(a.sock, b.sock here: another datastore\'s or not answering', r.stdout);
  assert.match(r.stdout, '\nCheck complete; found 0 problems.\nexit=0\n', r.stdout + r.stderr);
});

test.run();
