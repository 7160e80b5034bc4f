// sysfsNetnsMismatch: a process put in a namespace by `nsenter --net=` still sees the host's
// /sys/class/net (podway run would never find a pod's interface); `ip netns exec` mounts a
// matching one. Root, one scratch network namespace.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { sysfsNetnsMismatch } from '../../src/dataplane/sysfs-netns';
import { addNetns } from '../helpers/netns';

if (process.getuid?.() !== 0) throw new Error('the sysfs namespace check test needs root (a network namespace)');

const NS = `pw-sysfs-${randomBytes(3).toString('hex')}`;
const MODULE = path.join(__dirname, '..', '..', 'src', 'dataplane', 'sysfs-netns.js');
const probe = `process.stdout.write(JSON.stringify(require(${JSON.stringify(MODULE)}).sysfsNetnsMismatch()))`;

test('nsenter --net= is told apart from ip netns exec and from the host', () => {
  const dropNs = addNetns(NS);
  try {
    assert.is(sysfsNetnsMismatch(), null, 'this process: its own /sys');
    const viaExec = JSON.parse(execFileSync('ip', ['netns', 'exec', NS, process.execPath, '-e', probe], { encoding: 'utf8', timeout: 60_000 }));
    assert.is(viaExec, null, 'ip netns exec mounts a matching /sys');
    const viaNsenter = JSON.parse(execFileSync('nsenter', [`--net=/run/netns/${NS}`, process.execPath, '-e', probe], { encoding: 'utf8', timeout: 60_000 }));
    assert.type(viaNsenter, 'string');
    assert.match(viaNsenter, /does not show this process's network namespace/);
    assert.match(viaNsenter, 'nsenter --net=');
  } finally {
    dropNs();
  }
});

test.run();
