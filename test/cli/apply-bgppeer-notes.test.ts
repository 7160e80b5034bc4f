// `podway apply` of a BGPPeer that uses fields podway's BGP stores but does not apply (filters,
// ttlSecurity, localASNumber): stored, exit 0, one note per field on stderr naming the BGPPeer;
// the fields podway applies (keepaliveTime, maxRestartTime, nextHopMode, reversePeering,
// sourceAddress) are taken without a note, and a bad duration is refused naming the field.
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
    assert.equal(notes.map((l) => l.replace(/: not applied.*|: BGPFilters are not applied.*/, '')), [
      'podway: note: BGPPeer tor: spec.filters (no-default)',
      'podway: note: BGPPeer tor: spec.ttlSecurity 2',
      'podway: note: BGPPeer tor: spec.localASNumber 65010',
    ]);
    assert.ok(!/BGPPeer rr/.test(r.err), r.err);
    writeFileSync(file, 'apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: bad}\nspec: {peerIP: 10.0.0.9, asNumber: 65000, keepaliveTime: 20}\n');
    const bad = await podway(['apply', '-f', file, '--datastore', spec]);
    assert.is(bad.code, 1, bad.err);
    assert.match(bad.err, /keepaliveTime/);
  } finally {
    await kv.close();
  }
});

test.run();
