import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UNDERLAY_RING_MB, underlayRingBlocks } from '../../src/dataplane/engine';

test('underlay ring: MiB to native/ports.c blocks (64 KiB on V2, 256 KiB on V3)', () => {
  assert.is(underlayRingBlocks(2, 16), 256);
  assert.is(underlayRingBlocks(3, 16), 64);
  assert.is(underlayRingBlocks(2, 1), 16);
  assert.is(underlayRingBlocks(2, UNDERLAY_RING_MB) * 64 * 1024, UNDERLAY_RING_MB << 20);
  assert.is(underlayRingBlocks(3, UNDERLAY_RING_MB) * 256 * 1024, UNDERLAY_RING_MB << 20);
});

test('underlay ring: sizes that are not a whole number of MiB in 1..1024 are refused', () => {
  for (const mb of [0, -1, 1.5, Number.NaN, 1025]) assert.throws(() => underlayRingBlocks(2, mb), /underlay ring size/);
});

test.run();
