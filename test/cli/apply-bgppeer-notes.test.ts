// `podway apply` of BGPPeers and BGPFilters: what podway applies (filters, ttlSecurity,
// localASNumber on a peerIP BGPPeer; keepaliveTime, maxRestartTime, nextHopMode, reversePeering,
// sourceAddress) is taken without a note; what it does not (localASNumber on a peerSelector
// BGPPeer, as confd; a BGPFilter rule's priority) is stored with one note per field naming the
// resource; a bad duration, or a bad BGPFilter rule, is refused naming the field.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { podwayInProcess as podway, tempDir, embeddedTarget } from './cli-kit';

test('apply notes each unapplied BGPPeer field; applied ones pass quietly', async () => {
  const { spec, kv } = await embeddedTarget.open();
  const work = tempDir('podway-bgppeer-notes-');
  try {
    const file = path.join(work, 'peers.yaml');
    writeFileSync(file, [
      'apiVersion: projectcalico.org/v3', 'kind: BGPPeer', 'metadata: {name: tor}',
      'spec: {peerIP: 10.0.0.254, asNumber: 65000, filters: [no-default], ttlSecurity: 2, localASNumber: 65010}', '---',
      'apiVersion: projectcalico.org/v3', 'kind: BGPPeer', 'metadata: {name: rr}',
      'spec: {peerSelector: "rr == \'true\'", keepaliveTime: 20s, maxRestartTime: 2m, nextHopMode: Self, reversePeering: Manual, sourceAddress: None}', '',
    ].join('\n'));
    const r = await podway(['apply', '-f', file, '--datastore', spec]);
    assert.is(r.code, 0, r.err);
    const notes = r.err.split('\n').filter((l) => l.startsWith('podway: note: BGPPeer'));
    assert.equal(notes, [], r.err);
    assert.ok(!/BGPPeer rr/.test(r.err), r.err);
    writeFileSync(file, [
      'apiVersion: projectcalico.org/v3', 'kind: BGPPeer', 'metadata: {name: sel}',
      'spec: {peerSelector: "rr == \'true\'", localASNumber: 65010}', '---',
      'apiVersion: projectcalico.org/v3', 'kind: BGPFilter', 'metadata: {name: no-default}',
      'spec: {importV4: [{cidr: 0.0.0.0/0, matchOperator: Equal, action: Reject}, {cidr: 10.0.0.0/8, matchOperator: In, priority: 512, action: Accept}]}', '',
    ].join('\n'));
    const noted = await podway(['apply', '-f', file, '--datastore', spec]);
    assert.is(noted.code, 0, noted.err);
    assert.equal(noted.err.split('\n').filter((l) => l.startsWith('podway: note: BGP')).map((l) => l.replace(/(: spec\.[^ :]+).*/, '$1')), [
      'podway: note: BGPPeer sel: spec.localASNumber',
      'podway: note: BGPFilter no-default: spec.importV4[1].priority',
    ]);
    const got = await podway(['get', 'bgpfilter', '--datastore', spec]);
    assert.is(got.code, 0, got.err);
    assert.match(got.out, /NAME\s+NUMEXPORTV4\s+NUMIMPORTV4\s+NUMEXPORTV6\s+NUMIMPORTV6\nno-default\s+0\s+2\s+0\s+0/);
    writeFileSync(file, 'apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: bad}\nspec: {exportV4: [{cidr: 10.0.0.0/8, action: Reject}, {cidr: "fd00::/8", matchOperator: In, action: Accept}, {action: Drop}, {cidr: 10.0.0.0/8, matchOperator: In, action: Accept, interfce: eth0}]}\n');
    const badFilter = await podway(['apply', '-f', file, '--datastore', spec]);
    assert.is(badFilter.code, 1, badFilter.err);
    assert.match(badFilter.err, /spec\.exportV4\[0\]\.matchOperator: required with cidr/);
    assert.match(badFilter.err, /spec\.exportV4\[1\]\.cidr: expected an IPv4 CIDR/);
    assert.match(badFilter.err, /spec\.exportV4\[2\]\.action/);
    assert.match(badFilter.err, /spec\.exportV4\[3\]\.interfce: unknown field \(did you mean interface\?\)/);
    writeFileSync(file, 'apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: bad}\nspec: {peerIP: 10.0.0.9, asNumber: 65000, keepaliveTime: 20}\n');
    const bad = await podway(['apply', '-f', file, '--datastore', spec]);
    assert.is(bad.code, 1, bad.err);
    assert.match(bad.err, /keepaliveTime/);
  } finally {
    await kv.close();
  }
});

test.run();
