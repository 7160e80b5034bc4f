/**
 * Command-line options of every benchmark entry point (e2e run.ts, rr-tail.ts, rr-rounds.ts, and
 * each package.json bench* script: lpm, packet, capture, io, stall, ipam, watch, kv/lock, cni, bgp,
 * startup, startup-etcd).
 *
 * Why checked before anything runs: each of them builds a lab of network namespaces and measures
 * for minutes, and the machine's benchmarks take turns under one lock. A `--help`, or a misspelt
 * option that was silently ignored, used to start the whole default run instead (minutes of load
 * beside someone else's measurement). Now `--help`/`-h` prints the usage and exits 0, and an
 * option the entry point does not know, or one missing its value, is refused with exit code 2.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export interface BenchArgSpec {
  /** Printed by --help and after a refusal. */
  readonly usage: string;
  /** Options that take no value. */
  readonly flags: readonly string[];
  /** Options followed by a value. */
  readonly options: readonly string[];
  /** Options followed by a value that may be given more than once. */
  readonly repeated?: readonly string[];
}

export interface BenchArgs {
  readonly argv: readonly string[];
  /** The value of an option given once (the last one if repeated), or undefined. */
  opt(name: string): string | undefined;
  /** Every value of an option given several times, in order. */
  all(name: string): string[];
  has(flag: string): boolean;
}

/** Thrown for a usage error; the entry point's caller prints it and exits 2. */
export class BenchUsageError extends Error {}

/** Parses argv against the spec; throws BenchUsageError on an unknown option or a missing value. */
export function parseBenchArgs(argv: readonly string[], spec: BenchArgSpec): BenchArgs {
  const values = new Map<string, string[]>();
  const flags = new Set<string>();
  const valued = new Set([...spec.options, ...(spec.repeated ?? [])]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (spec.flags.includes(a)) {
      flags.add(a);
    } else if (valued.has(a)) {
      const v = argv[i + 1];
      // A value may itself start with "--" (--podway-args "--workers 2"): only its absence is an error.
      if (v === undefined) throw new BenchUsageError(`${a} needs a value`);
      values.set(a, [...(values.get(a) ?? []), v]);
      i++;
    } else {
      throw new BenchUsageError(`unknown option ${JSON.stringify(a)}`);
    }
  }
  return {
    argv,
    opt: (name) => values.get(name)?.at(-1),
    all: (name) => values.get(name) ?? [],
    has: (flag) => flags.has(flag),
  };
}

/**
 * For an entry point's main: --help/-h prints the usage and exits 0; a usage error is printed with
 * the usage and exits 2. Returns the parsed options otherwise.
 */
export function benchArgsOrExit(argv: readonly string[], spec: BenchArgSpec): BenchArgs {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(spec.usage.trimEnd() + '\n');
    process.exit(0);
  }
  try {
    return parseBenchArgs(argv, spec);
  } catch (e) {
    if (!(e instanceof BenchUsageError)) throw e;
    process.stderr.write(`${e.message}\n${spec.usage.trimEnd()}\n`);
    process.exit(2);
  }
}

/** An integer option's value within [min, max], `dflt` when absent; a bad value throws naming it. */
export function intOption(args: BenchArgs, name: string, dflt: number, min: number, max: number): number {
  const v = args.opt(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} needs an integer ${min}..${max} (got ${JSON.stringify(v)})`);
  return n;
}

/**
 * `--compare DIR`: another checkout of podway to measure beside this one, resolved to an absolute
 * path; it must hold `marker` (a built file, e.g. bin/podway.js), else the error says so before
 * minutes of measuring start. Undefined when the option is absent.
 */
export function compareCheckout(args: BenchArgs, marker: string): string | undefined {
  const v = args.opt('--compare');
  if (v === undefined) return undefined;
  const dir = path.resolve(v);
  if (!existsSync(path.join(dir, marker))) throw new Error(`--compare ${v}: no ${marker} there (build it first)`);
  return dir;
}
