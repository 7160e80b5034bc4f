/**
 * `podway run --bgp --bgp-secrets DIR` end to end (root, network namespaces, BIRD 2 as the ToR with
 * TCP-MD5): the BGPPeer's password is a secret under DIR (DIR/<secret>/<key>, a mounted Kubernetes
 * secret's layout), watched as calico-node's confd watches its secrets.
 *
 * 1. The secret is missing at the start: the peer is left out, named under the node's warnings.
 * 2. The secret appears: the plan is made again at once and the session comes up with it.
 * 3. The password is rotated: BIRD gets the new key (`birdc configure`, the session drops), the file
 *    is replaced (tmp + mv): podway logs that the secret changed, resets that session with the new
 *    key, and it is Established again, the ToR learning the node's block, with no datastore change.
 * The password itself is never in podway's log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Lab } from '../../src/lab/lab';
import { controlRequest } from '../../src/dataplane/control-server';
import { until } from './e2e-kit';
import { inBgpLab, nodesOnOneSubnet, writeResources, peersNow, torConf, TOR_IP, TOR_AS, OUTSIDE_NET, type BirdProcess } from './bgp-kit';

const SECRET = 'bgp-pw';
const KEY = 'password';
const OLD = `old-key-${process.pid}`;
const NEW = `new-key-${process.pid}`;

/** The ToR's configuration with TCP-MD5 `password` on its session with every node. */
function torWithPassword(lab: Lab, password: string): string {
  const conf = torConf(lab, TOR_IP, TOR_AS, OUTSIDE_NET).replace(/graceful restart aware;/g, `graceful restart aware;\n  password "${password}";`);
  assert.ok(conf.includes(`password "${password}"`), 'the password is in the ToR\'s configuration');
  return conf;
}

const TOR_PEER = `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: ${TOR_IP}
  asNumber: ${TOR_AS}
  password:
    secretKeyRef:
      name: ${SECRET}
      key: ${KEY}
`;

/** Writes DIR/<secret>/<key> as a rotation does: a temporary file renamed over the old one. */
function writeSecret(dir: string, value: string): void {
  mkdirSync(path.join(dir, SECRET), { recursive: true });
  const tmp = path.join(dir, SECRET, `.${KEY}.tmp`);
  writeFileSync(tmp, `${value}\n`);
  renameSync(tmp, path.join(dir, SECRET, KEY));
}

test('--bgp-secrets in a running podway: a missing secret that appears, then a rotated password, each applied at once (session reset with the new key)', () => inBgpLab(nodesOnOneSubnet(1), async (lab, birds) => {
  const secrets = mkdtempSync(path.join(tmpdir(), `podway-bgp27-secrets-${process.pid}-`));
  try {
    const n1 = lab.node('node1');
    writeResources(lab, [lab.resources('direct'), TOR_PEER]);
    const tor: BirdProcess = await birds.start(lab.fabric, 'tor', torWithPassword(lab, OLD));
    const torConfFile = path.join(lab.dir, 'tor.conf');
    await lab.startPodway('node1', 20_000, ['--bgp', '--bgp-secrets', secrets]);

    // 1. No secret yet: the peer is left out, and said so.
    const status = () => controlRequest(n1.control, { cmd: 'node-status' }, 5000) as Promise<{ peers: { address: string }[]; warnings?: string[] }>;
    const missing = (s: { warnings?: string[] }) => (s.warnings ?? []).some((w) => w.includes(`secret ${SECRET}/${KEY} is not available`));
    assert.ok(await until(async () => missing(await status()), 20_000, 250), `the missing secret is named: ${JSON.stringify(await status())}`);
    assert.equal((await status()).peers, [], 'no session without its password');

    // 2. The secret appears: the ToR's session comes up, with no datastore change.
    writeSecret(secrets, OLD);
    const up = async () => (await peersNow(lab, 'node1')).find((p) => p.address === TOR_IP)?.bgpState === 'Established';
    assert.ok(await until(up, 30_000, 250), `Established once the secret appeared: ${JSON.stringify(await peersNow(lab, 'node1'))}\n${n1.log.slice(-20).join('\n')}`);
    assert.ok(await until(() => tor.birdc('show', 'route', n1.block).includes(n1.block), 20_000, 250), `the ToR learns ${n1.block}:\n${tor.birdc('show', 'route')}`);

    // 3. Rotation: the ToR first (its session drops: podway still has the old key), then the file.
    const mark = n1.log.length;
    writeFileSync(torConfFile, torWithPassword(lab, NEW));
    const conf = tor.birdc('configure');
    assert.match(conf, /Reconfigured|Reconfiguration in progress/, conf);
    assert.ok(await until(async () => !(await up()), 20_000, 250), 'the session drops once only the ToR has the new key');
    writeSecret(secrets, NEW);
    assert.ok(await until(() => n1.log.slice(mark).some((l) => l.includes(`secret ${SECRET}/${KEY} changed: peer ${TOR_IP} changed (session reset)`)), 20_000, 250),
      `podway says the secret changed and resets the session: ${n1.log.slice(mark).join('\n')}`);
    assert.ok(await until(up, 30_000, 250), `Established again with the new key: ${JSON.stringify(await peersNow(lab, 'node1'))}\n${tor.birdc('show', 'protocols', 'all', 'node1')}`);
    assert.ok(await until(() => /Established/.test(tor.birdc('show', 'protocols', 'all', 'node1')), 10_000, 250), tor.birdc('show', 'protocols', 'all', 'node1'));
    assert.ok(await until(() => tor.birdc('show', 'route', n1.block).includes(n1.block), 20_000, 250), `the ToR learns ${n1.block} again:\n${tor.birdc('show', 'route')}`);
    assert.not.ok(n1.log.some((l) => l.includes(OLD) || l.includes(NEW)), 'no password in podway\'s log');
  } finally {
    rmSync(secrets, { recursive: true, force: true });
  }
}));

test.run();
