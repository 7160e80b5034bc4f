/**
 * A model cache of format 3 as the podway before format 4 wrote it (a9affa6's
 * src/cli/model-cache.ts cacheText and hashed, kept here as they were): the fields in that order,
 * the boot id but no Node, the SHA-256 of the model's text, a newline and the BGP settings' text.
 * An upgrade's first start finds such a file (docs/running.md, "Upgrading").
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { NodeDataplaneModel } from '../../src/control';
import type { BgpInputs } from '../../src/control/bgp/cached-inputs';
import { encodeModel } from '../../src/cli/model-cache';

/** a9affa6's hashed(): version 1 the model alone, version 2 and 3 the model and the BGP settings. */
function hashed(model: string, bgp: string | null | undefined): string {
  return bgp === undefined ? model : `${model}\n${bgp ?? 'null'}`;
}

/** a9affa6's cacheText() (MODEL_CACHE_VERSION 3). */
export function format3CacheText(node: string, datastore: string, model: NodeDataplaneModel, appliedAt: Date, bgp: BgpInputs | null, bootId: string | null): string {
  const text = encodeModel(model);
  const bgpText = bgp === null ? null : JSON.stringify(bgp);
  const body = { format: 'podway-model-cache', version: 3, node, datastore, appliedAt: appliedAt.toISOString(), bootId, sha256: createHash('sha256').update(hashed(text, bgpText)).digest('hex'), model: text, bgp: bgpText };
  return JSON.stringify(body);
}

/** Writes `file` as that podway did (its directory made; not atomically: a test's file). */
export function writeFormat3Cache(file: string, node: string, datastore: string, model: NodeDataplaneModel, appliedAt: Date, bgp: BgpInputs | null, bootId: string | null): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, format3CacheText(node, datastore, model, appliedAt, bgp, bootId), { mode: 0o600 });
}
