// Reads the resource files given to `podway apply|create|replace|delete -f FILE`: YAML or JSON, one
// document or several (`---`, or JSON objects one after another), each a resource, a list of
// resources (`[{...}, {...}]`) or a `kind: List` / `kind: IPPoolList` with items (what
// `podway get -o yaml` and `calicoctl get -o yaml` print), as calicoctl's resource loader reads them. Every document is validated before
// anything is written; problems are worded as snapshot.ts words them:
//   pools.yaml: document 2 (IPPool default-pool): spec.cidr: expected a CIDR like 10.244.0.0/16, got "x"
import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { unknownCalicoFields } from '../control/calico-fields';
import { kindInfo, peekIdentity, validateResource } from '../control/calico-kinds';
import { selectorIssues } from '../control/selector-fields';
import { asNumberInput } from '../control/as-number';
import { assignOrValidateWepName } from '../control/wep-name';
import { forEachYamlDocument, formatIssue, SourceLocation, ValidationIssue, yamlDocValue } from '../control/snapshot';
import type { JsonObject } from '../control/v3-store';

export interface FileResource {
  /** The document as written (fields Calico defines but podway does not use are stored as given). */
  readonly object: JsonObject;
  readonly location: SourceLocation;
  /** The file it came from, when read from a directory (`-f DIR`). */
  readonly file?: string;
}

export class ResourceFileError extends Error {
  constructor(readonly issues: readonly ValidationIssue[]) {
    super(issues.slice(0, 20).map(formatIssue).join('\n') + (issues.length > 20 ? `\n... and ${issues.length - 20} more problems` : ''));
    this.name = 'ResourceFileError';
  }
}

function isMapping(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function locate(raw: unknown, position: { document: number; item?: number }): SourceLocation {
  const { kind, name, namespace } = peekIdentity(raw);
  const shown = name !== undefined && kind === 'WorkloadEndpoint' ? `${namespace ?? 'default'}/${name}` : name;
  return { ...position, kind, name: shown };
}

/**
 * How a file is read: 'full' validates each resource against its kind's schema; 'write' (apply,
 * create, replace) does too and, as Calico's client does before it writes, refuses a named
 * WorkloadEndpoint whose spec lacks an identifier Calico computes the name from; 'identity' (for
 * delete) needs only a known kind and a name.
 */
export type ReadMode = 'full' | 'write' | 'identity';

/** The resources in `text` (named `file` in errors), read as `mode` says. */
export function parseResourceText(text: string, file: string, mode: ReadMode = 'full'): FileResource[] {
  const issues: ValidationIssue[] = [];
  const out: FileResource[] = [];
  // Each YAML document's value (or its errors) taken as it is read, its tree let go.
  const fromYaml: { errors: readonly { message: string }[]; toJS(): unknown }[] = [];
  forEachYamlDocument(text, (doc) => {
    if (doc.errors.length > 0) {
      fromYaml.push({ errors: doc.errors.map((e) => ({ message: `invalid YAML: ${e}` })), toJS: () => null });
      return;
    }
    let value: unknown;
    let failure: unknown;
    try {
      value = doc.toJS();
    } catch (e) {
      failure = e; // an alias bomb's "Excessive alias count": yamlDocValue below names it
    }
    fromYaml.push({ errors: [], toJS: () => { if (failure !== undefined) throw failure; return value; } });
  });
  const take = (given: unknown, position: { document: number; item?: number }) => {
    let raw = given;
    if (isMapping(raw) && raw.kind === 'WorkloadEndpoint') {
      // As Calico's client does: the name computed from the spec when absent, refused when it differs.
      const named = assignOrValidateWepName(raw, { requireIdentifiers: mode === 'write' });
      if (!('object' in named)) {
        issues.push({ file, location: locate(raw, position), path: named.path, message: named.message });
        return;
      }
      raw = named.object;
    }
    const location = locate(raw, position);
    if (mode === 'identity') {
      const id = peekIdentity(raw);
      if (!isMapping(raw)) issues.push({ file, location, path: '', message: 'expected a mapping with apiVersion, kind, metadata and spec' });
      else if (!id.kind || !kindInfo(id.kind)) issues.push({ file, location, path: 'kind', message: `unknown kind ${JSON.stringify(id.kind)}` });
      else if (!id.name) issues.push({ file, location, path: 'metadata.name', message: 'required (a string)' });
      else out.push({ object: raw, location });
      return;
    }
    const result = validateResource(raw);
    // A field Calico does not define is a typo that would be stored and mean the default.
    const unknown = unknownCalicoFields(raw);
    // a malformed selector is refused here, as calicoctl does (stored ones load with a warning)
    const reserved = [...reservedAsNumber(raw), ...selectorIssues(raw)];
    for (const issue of [...(result.ok ? [] : result.issues), ...unknown, ...reserved]) issues.push({ file, location, path: issue.path, message: issue.message });
    if (!result.ok || unknown.length > 0 || reserved.length > 0) return;
    out.push({ object: raw as JsonObject, location });
  };
  // Concatenated JSON values (`{...}{...}`, as `kubectl get -o json` pieces are joined), which
  // calicoctl's YAML-or-JSON decoder reads one after another, are no YAML: each is a document.
  const jsonStream = fromYaml.some((doc) => doc.errors.length > 0) ? splitJsonStream(text) : null;
  const documents: { errors: readonly { message: string }[]; toJS(): unknown }[] = jsonStream
    ? jsonStream.map((piece) => {
        try {
          const value: unknown = JSON.parse(piece);
          return { errors: [], toJS: () => value };
        } catch (e) {
          return { errors: [{ message: `invalid JSON: ${(e as Error).message}` }], toJS: () => null };
        }
      })
    : fromYaml;
  documents.forEach((doc, index) => {
    const document = index + 1;
    if (doc.errors.length > 0) {
      issues.push({ file, location: { document }, path: '', message: doc.errors[0]!.message.split('\n')[0]!.replace(/:$/, '') });
      return;
    }
    const value = yamlDocValue(doc, file, document, issues);
    if (value === null) return;
    const raw = value.js;
    if (raw === null || raw === undefined) return; // an empty document, e.g. a trailing '---'
    if (Array.isArray(raw)) {
      // a list of resources (calicoctl's unmarshalSliceOfResources): each item a resource
      raw.forEach((item, i) => take(item, { document, item: i + 1 }));
      return;
    }
    if (isMapping(raw) && typeof raw.kind === 'string' && raw.kind.endsWith('List') && !kindInfo(raw.kind)) {
      if (!Array.isArray(raw.items)) {
        issues.push({ file, location: { document, kind: raw.kind }, path: 'items', message: 'required (a list)' });
        return;
      }
      raw.items.forEach((item, i) => take(item, { document, item: i + 1 }));
      return;
    }
    take(raw, { document });
  });
  if (issues.length > 0) throw new ResourceFileError(issues);
  if (out.length === 0) throw new ResourceFileError([{ file, location: null, path: '', message: 'no resources in the file' }]);
  return out;
}

/**
 * `text` cut into its top-level JSON values when it is two or more of them one after another
 * (objects or lists, blanks between); null when it is not such a stream. Strings are skipped
 * whole, so braces inside them do not count; a piece is not parsed here.
 */
function splitJsonStream(text: string): string[] | null {
  const pieces: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (depth === 0) {
      if (c === '{' || c === '[') {
        start = i;
        depth = 1;
      } else if (!/\s/.test(c)) return null; // something other than a JSON object or list at the top
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) pieces.push(text.slice(start, i + 1));
    }
  }
  if (depth !== 0) pieces.push(text.slice(start)); // unterminated: JSON.parse says where
  return pieces.length >= 2 ? pieces : null;
}

/**
 * Reads FILE ('-' for standard input) and parses it (see parseResourceText). A directory, as with
 * calicoctl, stands for its .yaml, .yml and .json files (not its subdirectories), in name order;
 * every file's problems are reported before anything is written.
 */
export function readResourceFile(file: string, mode: ReadMode = 'full'): FileResource[] {
  if (file !== '-' && isDirectory(file)) {
    const names = readdirSync(file).filter((n) => /\.(ya?ml|json)$/i.test(n)).sort();
    const files = names.map((n) => path.join(file, n)).filter((f) => !isDirectory(f));
    if (files.length === 0) throw new ResourceFileError([{ file, location: null, path: '', message: 'no .yaml, .yml or .json files in the directory' }]);
    const out: FileResource[] = [];
    const issues: ValidationIssue[] = [];
    for (const f of files) {
      try {
        for (const r of readOneFile(f, mode)) out.push({ ...r, file: f });
      } catch (e) {
        if (e instanceof ResourceFileError) issues.push(...e.issues);
        else throw e;
      }
    }
    if (issues.length > 0) throw new ResourceFileError(issues);
    return out;
  }
  return readOneFile(file, mode);
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false; // reading it says why
  }
}

/** The largest resource file read (`podway apply -f /dev/zero` must not read for ever). */
const MAX_RESOURCE_FILE = 64 * 1024 * 1024;

function readOneFile(file: string, mode: ReadMode): FileResource[] {
  const name = file === '-' ? '<stdin>' : file;
  let text: string;
  try {
    text = readCapped(file === '-' ? 0 : file, MAX_RESOURCE_FILE);
  } catch (e) {
    throw new Error(`${name}: cannot read: ${(e as Error).message}`);
  }
  return parseResourceText(text, name, mode);
}

/** A file's (or a descriptor's) text, refused once longer than `max` bytes. */
function readCapped(file: string | number, max: number): string {
  const fd = typeof file === 'number' ? file : openSync(file, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(1 << 20);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
          // a non-blocking stdin (a pipe a parent shares): wait 10 ms for more, without spinning
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          continue;
        }
        if ((e as NodeJS.ErrnoException).code === 'EOF') break;
        throw e;
      }
      if (n === 0) break;
      total += n;
      if (total > max) throw new Error(`longer than ${max / (1024 * 1024)} MiB: not a resource file`);
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    if (typeof file !== 'number') closeSync(fd);
  }
}

/**
 * AS 0 is reserved (RFC 7607): a BGPPeer, BGPConfiguration or Node naming it could never peer, so
 * it is refused when written. (Stored resources with it still load: the BGP plan skips or
 * defaults them with a warning.)
 */
function reservedAsNumber(raw: unknown): { path: string; message: string }[] {
  if (!isMapping(raw) || !isMapping(raw.spec)) return [];
  const spec = raw.spec as Record<string, unknown>;
  const bgp = isMapping(spec.bgp) ? (spec.bgp as Record<string, unknown>) : null;
  const message = 'AS 0 is reserved (RFC 7607): use 1-4294967295';
  if ((raw.kind === 'BGPPeer' || raw.kind === 'BGPConfiguration') && asNumberInput(spec.asNumber) === 0) return [{ path: 'spec.asNumber', message }];
  if (raw.kind === 'BGPPeer' && asNumberInput(spec.localASNumber) === 0) return [{ path: 'spec.localASNumber', message }];
  if (raw.kind === 'Node' && asNumberInput(bgp?.asNumber) === 0) return [{ path: 'spec.bgp.asNumber', message }];
  return [];
}
