// An ADD racing a DEL of the same container (review E, M1): the ADD assigns under the IPAM lock
// and wires the pod after it; a DEL run in between releases the handle and finds no endpoint, and
// the ADD then left a pod (interface + WorkloadEndpoint) on an address IPAM had freed, for
// another pod to get. The order is made certain without touching the plugin: the ADD runs with
// an `ip` of the test's first on its PATH (the shim puts the system's after the runtime's PATH),
// which, for the ADD's veth creation (its first `ip`, after the IPAM step), says it got there and
// waits until the test has run the whole DEL, then runs the real ip.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CniHarness } from './harness';
import { Ipam } from '../../src/control/ipam';
import { handleKey } from '../../src/control/ipam/keys';
import { RESOURCES_PREFIX } from '../../src/control/calico-kinds';
import { sleep } from '../helpers/netns';

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(50);
  }
  return cond();
}

test('ADD racing a DEL of the same container: the ADD is undone and fails with code 11, nothing left', async () => {
  const h = new CniHarness();
  const wrap = mkdtempSync(path.join(tmpdir(), 'podway-race-ip-'));
  try {
    await h.setup();
    const reached = path.join(wrap, 'reached');
    const go = path.join(wrap, 'go');
    // Bounded: the wait gives up after 60 s (the test then fails on its own assertions).
    writeFileSync(path.join(wrap, 'ip'), `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ] && [ "$1" = -batch ] && [ ! -e '${reached}' ]; then
  : > '${reached}'
  i=0; while [ ! -e '${go}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
fi
exec /usr/sbin/ip "$@"
`, { mode: 0o755 });
    const pod = h.pod('race');
    const cid = `race${h.tag}`;
    const adding = h.call({ command: 'ADD', containerId: cid, netns: pod.path, ifname: 'eth0', env: { PATH: `${wrap}:/usr/sbin:/usr/bin:/sbin:/bin` } });
    assert.ok(await until(() => existsSync(reached), 60_000), 'the ADD reached its veth creation');
    const handle = await h.kv.get(handleKey(`podway.${cid}`));
    assert.ok(handle, 'the ADD assigned its address before wiring the pod');
    const del = await h.call({ command: 'DEL', containerId: cid, netns: pod.path, ifname: 'eth0' });
    assert.is(del.exitCode, 0, del.stdout + del.stderr);
    assert.is(await h.kv.get(handleKey(`podway.${cid}`)), null, 'the DEL released the handle');
    writeFileSync(go, '');
    const add = await adding;
    assert.is(add.exitCode, 1, `ADD fails: ${add.stdout} ${add.stderr}`);
    assert.is(add.json?.code, 11);
    assert.match(String(add.json?.msg), /were released while it was wiring the pod, by a DEL of the same container/);
    // Nothing of the ADD is left: no endpoint, no veth, no address, and IPAM agrees with itself.
    const weps = (await h.kv.list(`${RESOURCES_PREFIX}workloadendpoints/`)).entries;
    assert.equal(weps.map((e) => e.key), []);
    assert.equal(h.node.ip('-o', 'link', 'show', 'type', 'veth').trim(), '');
    assert.equal(pod.ip('-o', 'link', 'show', 'type', 'veth').trim(), '');
    assert.equal((await new Ipam(h.kv).check()).map((p) => `${p.kind}: ${p.message}`), []);
  } finally {
    rmSync(wrap, { recursive: true, force: true });
    await h.cleanup();
  }
});

test.run();
