/**
 * `get -o custom-columns=SPEC` and `-o custom-columns-file=FILE`, as kubectl and calicoctl take them.
 *
 * SPEC is a comma-separated list of columns. A column is either `HEADER:PATH` (kubectl's form:
 * `NAME:.metadata.name,CIDR:.spec.cidr`) or a bare `HEADER` (calicoctl's form: one of the kind's
 * own table headings, `NAME,CIDR`; resolved by the caller, which knows the kind). A FILE holds
 * kubectl's two lines: the headers, then their paths, separated by blanks.
 *
 * PATH is the subset of JSONPath kubectl's custom columns are written in: fields (`.a.b`, the
 * leading dot optional, a `{...}` around it allowed), `['key.with.dots']` for a key that is not a
 * plain word, `[N]` for a list element and `[*]` for every element (or every value of a map).
 * What a path does not reach prints `<none>`; several values (through `[*]`) are joined by commas,
 * as is a list of plain values; a map (or a list of maps) prints as compact JSON. Anything else (filters, `..`, slices) is refused with a
 * message naming the column and what is wrong.
 */
import { readFileSync } from 'node:fs';

export type PathStep = { readonly key: string } | { readonly index: number } | { readonly all: true };

export interface CustomColumn {
  readonly header: string;
  /** null: a bare calicoctl heading, to be found among the kind's own columns. */
  readonly path: readonly PathStep[] | null;
  /** the path as written, for messages */
  readonly source: string;
}

export interface CustomColumns {
  readonly custom: readonly CustomColumn[];
}

export class CustomColumnsError extends Error {}

const WORD = /^[A-Za-z0-9_$-]+/;

/** Parses one JSONPath-like path (`.spec.cidr`, `{.spec.ipNetworks[*]}`, `metadata.labels['a.b/c']`). */
export function parsePath(text: string, where: string): PathStep[] {
  let p = text.trim();
  if (p.startsWith('{') !== p.endsWith('}')) throw new CustomColumnsError(`${where}: unbalanced braces in path ${JSON.stringify(text)}`);
  if (p.startsWith('{')) p = p.slice(1, -1).trim();
  if (p === '' || p === '.') throw new CustomColumnsError(`${where}: empty path (write e.g. .metadata.name)`);
  if (p.startsWith('$')) p = p.slice(1);
  if (!p.startsWith('.') && !p.startsWith('[')) p = '.' + p;
  const steps: PathStep[] = [];
  let i = 0;
  const bad = (what: string) => new CustomColumnsError(`${where}: ${what} at character ${i + 1} of path ${JSON.stringify(text)}`);
  while (i < p.length) {
    if (p[i] === '.') {
      if (p[i + 1] === '.') throw bad('recursive descent (..) is not supported');
      const m = WORD.exec(p.slice(i + 1));
      if (!m) throw bad('expected a field name after "."');
      steps.push({ key: m[0] });
      i += 1 + m[0].length;
    } else if (p[i] === '[') {
      const close = p.indexOf(']', i);
      if (close < 0) throw bad('unclosed "["');
      const inner = p.slice(i + 1, close).trim();
      const quoted = /^'([^']*)'$|^"([^"]*)"$/.exec(inner);
      if (inner === '*') steps.push({ all: true });
      else if (/^\d+$/.test(inner)) steps.push({ index: Number(inner) });
      else if (quoted) steps.push({ key: quoted[1] ?? quoted[2]! });
      else throw bad(`unsupported subscript [${inner}] (use [N], [*] or ['key'])`);
      i = close + 1;
    } else {
      throw bad(`unexpected ${JSON.stringify(p[i])}`);
    }
  }
  return steps;
}

/** Parses a `custom-columns=` SPEC (the part after `=`). */
export function parseCustomColumnsSpec(spec: string): CustomColumn[] {
  if (spec.trim() === '') throw new CustomColumnsError('custom-columns: give at least one column, e.g. custom-columns=NAME:.metadata.name,CIDR:.spec.cidr');
  return spec.split(',').map((entry, n) => {
    const where = `custom-columns: column ${n + 1} (${JSON.stringify(entry)})`;
    const colon = entry.indexOf(':');
    const header = (colon < 0 ? entry : entry.slice(0, colon)).trim();
    if (header === '') throw new CustomColumnsError(`${where}: empty header (write HEADER:PATH, e.g. NAME:.metadata.name)`);
    if (colon < 0) return { header, path: null, source: header };
    const source = entry.slice(colon + 1);
    return { header, path: parsePath(source, where), source: source.trim() };
  });
}

/** Reads a `custom-columns-file=` FILE: a line of headers, then a line of as many paths. */
export function readCustomColumnsFile(file: string): CustomColumn[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CustomColumnsError(`custom-columns-file: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length !== 2) throw new CustomColumnsError(`custom-columns-file: ${file}: expected 2 lines (headers, then paths), found ${lines.length}`);
  const headers = lines[0]!.split(/\s+/);
  const paths = lines[1]!.split(/\s+/);
  if (headers.length !== paths.length) {
    throw new CustomColumnsError(`custom-columns-file: ${file}: ${headers.length} header(s) but ${paths.length} path(s)`);
  }
  return headers.map((header, n) => ({ header, path: parsePath(paths[n]!, `custom-columns-file: ${file}: column ${n + 1} (${header})`), source: paths[n]! }));
}

/** `-o` values of this shape: parsed columns, or null when `value` is not a custom-columns format. */
export function parseCustomColumnsOutput(value: string): CustomColumns | null {
  const m = /^(custom-columns|custom-columns-file)(?:=(.*))?$/s.exec(value);
  if (!m) return null;
  if (m[2] === undefined) {
    throw new CustomColumnsError(m[1] === 'custom-columns'
      ? 'custom-columns needs a list of columns: custom-columns=NAME:.metadata.name,CIDR:.spec.cidr'
      : 'custom-columns-file needs a file: custom-columns-file=FILE');
  }
  return { custom: m[1] === 'custom-columns' ? parseCustomColumnsSpec(m[2]) : readCustomColumnsFile(m[2]) };
}

function follow(values: unknown[], step: PathStep): unknown[] {
  const out: unknown[] = [];
  for (const v of values) {
    if (v === null || typeof v !== 'object') continue;
    if ('all' in step) {
      out.push(...(Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)));
    } else if ('index' in step) {
      if (Array.isArray(v) && step.index < v.length) out.push(v[step.index]);
    } else if (!Array.isArray(v) && Object.prototype.hasOwnProperty.call(v, step.key)) {
      out.push((v as Record<string, unknown>)[step.key]);
    }
  }
  return out.filter((x) => x !== undefined);
}

/** The cell for `obj` at `path`: `<none>` when nothing is there, values joined by commas. */
export function evaluatePath(obj: unknown, path: readonly PathStep[]): string {
  let values: unknown[] = [obj];
  for (const step of path) values = follow(values, step);
  if (values.length === 0) return '<none>';
  return values.map(cell).join(',');
}

/** A scalar as written, a list of scalars joined by commas (as the kinds' own tables show lists), anything else as JSON. */
function cell(v: unknown): string {
  if (v === null) return '<none>';
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) return v.map((x) => (x === null ? '<none>' : String(x))).join(',');
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
