// `podway ipam check` without --node on a machine where several podway control sockets are found in
// /run/podway (nodes of test clusters on other datastores, or sockets a killed run left behind):
// only a run on the datastore checked is the one meant. Sockets that do not answer, or answer for
// another datastore, are passed over (exit 0, said); it used to call the check incomplete (exit 5)
// for as long as two stale socket files were there. Two runs that do answer for this datastore are
// two nodes of it here (a test cluster's), one node's part each: which one was meant cannot be
// told, so neither is guessed; the check is incomplete (exit 5) and names each --node. Run in a
// private mount namespace with a tmpfs over /run/podway, so the machine's own sockets are neither
// seen nor touched.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { BIN, ok, tempDir } from './cli-kit';
import { execBounded } from '../e2e/tools';
import { addNetns, tag } from '../helpers/netns';

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
    'mount -t tmpfs -o mode=0755 pw-ipam-sockets /run/podway',
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

test('two podway runs answering for this datastore (two nodes of it here): incomplete (exit 5), naming each one\'s --node; --node checks that one (exit 0)', async () => {
  if (process.getuid?.() !== 0) throw new Error('needs root (a mount namespace, network namespaces)');
  const t = tag();
  const dir = tempDir();
  const store = `embedded:${path.join(dir, 'store')}`;
  const pool = path.join(dir, 'pool.yaml');
  writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.251.0.0/16}\n');
  await ok(['apply', '-f', pool, '--datastore', store]);
  const nodes = [`cni26a-${t}`, `cni26b-${t}`];
  const drops: (() => void)[] = [];
  try {
    const runs: string[] = [];
    nodes.forEach((node, i) => {
      const ns = `pw-cni26-${i}-${t}`;
      drops.push(addNetns(ns));
      const addr = `10.1.9.${i + 1}/24`;
      for (const a of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', addr, 'dev', 'd0'], ['link', 'set', 'd0', 'up']]) execFileSync('ip', ['-n', ns, ...a]);
      runs.push(`ip netns exec ${ns} ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} run --node ${node} --ip ${addr} --datastore ${JSON.stringify(store)} --model-cache none --workers 1 2>${JSON.stringify(path.join(dir, `run${i}.log`))} &`, `P${i}=$!`);
    });
    const check = (more: string) => `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} ipam check --datastore ${JSON.stringify(store)} --grace-period 0${more}; echo "exit=$?"`;
    // Both runs stopped by their PIDs whatever happens (the shell's EXIT trap), at most 30 s each.
    const script = [
      'set -e',
      'mount -t tmpfs -o mode=0755 pw-ipam-sockets /run/podway',
      'P0=; P1=',
      'trap \'for p in $P0 $P1; do kill $p 2>/dev/null || true; done; for p in $P0 $P1; do for i in $(seq 1 300); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; kill -9 $p 2>/dev/null || true; done\' EXIT',
      ...runs,
      // Until each answers its status (at most 60 s).
      `for i in $(seq 1 600); do ${nodes.map((n) => `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} status --node ${n} >/dev/null 2>&1`).join(' && ')} && break; sleep 0.1; done`,
      'set +e',
      check(''),
      check(` --node ${nodes[1]}`),
    ].join('\n');
    const r = await execBounded('unshare', ['-m', 'sh', '-c', script], 180_000);
    assert.not.ok(r.timedOut, r.stderr);
    const [both, one] = r.stdout.split(/exit=\d+\n/);
    assert.match(r.stdout, /exit=5\n[^]*exit=0\n$/, r.stdout + r.stderr);
    assert.match(both, `several podway runs on ${store} answer here (${nodes[0]}.sock, ${nodes[1]}.sock), one node's part each: check each node with --node ${nodes[0]} or --node ${nodes[1]}`, both);
    assert.match(both, 'Check incomplete', both);
    assert.not.match(one, 'not checked', one);
    assert.match(one, 'Check complete; found 0 problems.', one);
  } finally {
    for (const d of drops) d();
  }
});

test.run();
