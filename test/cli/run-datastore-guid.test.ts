// A command given no datastore while this machine's `podway run` uses the same store under other
// text: the run's `embedded:<dir>/alias` is a symlink to the default embedded store
// (/var/lib/podway/datastore), as an etcd is reached at 127.0.0.1 in a run's unit and at the
// node's address in calicoctl.cfg. The check before a write (cli/run-datastore.ts) tells stores
// apart by the clusterGUID (ClusterInformation default) the run reports and the store holds, as
// `ipam check` does: the write goes through, a read is not warned. Before, the texts differed and
// the write was refused ("nothing was written"). A store whose clusterGUID is another's is still
// refused, with both GUIDs said. The run lives in a network namespace of this test; everything in a
// private mount namespace with tmpfs over /var/lib and /run/podway (the machine's are not seen or
// touched).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { BIN, tempDir } from './cli-kit';
import { execBounded } from '../e2e/tools';
import { addNetns, tag } from '../helpers/netns';

test('the default store under another name: a write goes through (same clusterGUID); another clusterGUID: refused, both said', async () => {
  if (process.getuid?.() !== 0) throw new Error('needs root (a mount namespace, a network namespace)');
  const t = tag();
  const dir = tempDir('podway-runguid-');
  const node = `rdsguid-${t}`;
  const ns = `pw-rdg-${t}`;
  const drop = addNetns(ns);
  // the mount point of the namespace's tmpfs (podway run makes it too); removed if made here
  const madeRunDir = !existsSync('/run/podway');
  if (madeRunDir) mkdirSync('/run/podway');
  try {
    for (const a of [['link', 'set', 'lo', 'up'], ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'], ['addr', 'add', '10.1.9.1/24', 'dev', 'd0'], ['link', 'set', 'd0', 'up']]) {
      await execBounded('ip', ['-n', ns, ...a], 10_000);
    }
    const file = (name: string, text: string) => {
      writeFileSync(path.join(dir, name), text);
      return JSON.stringify(path.join(dir, name));
    };
    const pool = file('pool.yaml', 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: guid-pool}\nspec: {cidr: 10.253.0.0/16}\n');
    const pool2 = file('pool2.yaml', 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: guid-pool2}\nspec: {cidr: 10.254.0.0/16}\n');
    const ci = file('ci.yaml', `apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: {name: default}\nspec: {clusterGUID: ${'b'.repeat(32)}, datastoreReady: true}\n`);
    const alias = path.join(dir, 'alias');
    const nodeBin = JSON.stringify(process.execPath);
    const bin = JSON.stringify(BIN);
    // a clean environment: no datastore named by a variable
    const cmd = (args: string) => `env -u PODWAY_DATASTORE -u DATASTORE_TYPE -u ETCD_ENDPOINTS -u CALICO_DATASTORE_TYPE -u CALICO_ETCD_ENDPOINTS ${nodeBin} ${bin} ${args}`;
    const script = [
      'set -e',
      'mount -t tmpfs -o mode=0755 pw-rdg-varlib /var/lib',
      'mount -t tmpfs -o mode=0755 pw-rdg-sockets /run/podway',
      'mkdir -p /var/lib/podway/datastore',
      `ln -s /var/lib/podway/datastore ${JSON.stringify(alias)}`,
      'P=',
      'trap \'for p in $P; do kill $p 2>/dev/null || true; done; for p in $P; do for i in $(seq 1 300); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; kill -9 $p 2>/dev/null || true; done\' EXIT',
      `ip netns exec ${ns} ${cmd(`run --node ${node} --ip 10.1.9.1/24 --datastore ${JSON.stringify(`embedded:${alias}`)} --model-cache none --workers 1`)} 2>${JSON.stringify(path.join(dir, 'run.log'))} &`, 'P=$!',
      `for i in $(seq 1 600); do ${cmd(`status --node ${node}`)} 2>/dev/null | grep -q clusterGUID && break; sleep 0.1; done`,
      'set +e',
      // each command's exit on stdout, its stderr ended by a line of its own
      `${cmd(`apply -f ${pool}`)}; echo "exit=$?"; echo "--end" >&2`,
      `${cmd('get ippool')}; echo "exit=$?"; echo "--end" >&2`,
      `${cmd(`apply -f ${ci} --datastore embedded:/var/lib/podway/datastore`)} >/dev/null; echo "exit=$?"; echo "--end" >&2`,
      `${cmd(`apply -f ${pool2}`)}; echo "exit=$?"; echo "--end" >&2`,
    ].join('\n');
    const r = await execBounded('unshare', ['-m', 'sh', '-c', script], 180_000);
    assert.not.ok(r.timedOut, r.stderr);
    assert.match(r.stdout, /exit=0\n[^]*exit=0\n[^]*exit=0\n[^]*exit=1\n$/, r.stdout + r.stderr);
    const [applied, got] = r.stdout.split(/exit=\d+\n/);
    assert.is(applied, "Successfully applied 1 'IPPool' resource(s)\n", r.stderr);
    assert.match(got!, /guid-pool\s+10\.253\.0\.0\/16/);
    const errs = r.stderr.split('--end\n');
    assert.is(errs[0], '', 'the write to the same store: nothing said');
    assert.is(errs[1], '', 'the read of the same store: not warned');
    assert.match(errs[3]!, new RegExp(`podway run \\(node ${node}\\) uses embedded:${alias.replace(/[.]/g, '\\.')} \\(clusterGUID [0-9a-f]{8}\\), not embedded:/var/lib/podway/datastore \\(clusterGUID bbbbbbbb\\), the default this command would use .*nothing was written`), r.stderr);
    assert.is(errs[3]!.split('\n').length, 2, errs[3]);
  } finally {
    drop();
    if (madeRunDir) {
      try {
        rmdirSync('/run/podway');
      } catch {
        /* a podway run of another test made its socket there meanwhile: left to it */
      }
    }
  }
});

test.run();
