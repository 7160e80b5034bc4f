// The CNI_* environment a runtime passes with each call, checked once and named in errors.
import { CniError, CNI_CODES } from './errors';

export const VERBS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type Verb = (typeof VERBS)[number];

export interface CniEnv {
  readonly command: Verb;
  readonly containerId: string;
  /** Absent on DEL (allowed by the spec), and on VERSION/STATUS/GC. */
  readonly netns: string;
  readonly ifname: string;
  readonly args: Readonly<Record<string, string>>;
  readonly path: readonly string[];
  /**
   * A DEL's CNI_ARGS had a part passed over (parseCniArgs with `warn`): a malformed part or a key
   * given twice; the pod's name ADD had may be missing from `args` or differ.
   */
  readonly argsFaulty?: boolean;
}

// The spec's container ID rule: alphanumerics plus '_', '.', '-', starting with an alphanumeric.
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * CNI_ARGS "K=V;K2=V2" as a map. Strict (ADD, CHECK): a part without '=' is refused, and so is a key
 * given twice with two values. Tolerant (DEL, `warn` given): such a part is said through `warn`
 * and passed over (a repeated key: its last value taken), so a DEL the runtime passes odd arguments still cleans up
 * what CNI_CONTAINERID, CNI_IFNAME and CNI_NETNS name and succeeds, as the CNI spec wants of DEL
 * (a kubelet would otherwise retry it for ever).
 */
export function parseCniArgs(text: string, warn?: (msg: string) => void): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      const why = `CNI_ARGS: ${JSON.stringify(part)} is not KEY=VALUE (expected K=V;K2=V2)`;
      if (!warn) throw new CniError(CNI_CODES.INVALID_ENV, why);
      warn(`${why}: passed over`);
      continue;
    }
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    // The same key twice with two values (`IP=A;IP=B`, podman's own IP= after one in the user's
    // CNI_ARGS): which one is meant cannot be told, where libcni's Go would quietly take the last.
    // Twice the same value is no question.
    if (Object.prototype.hasOwnProperty.call(out, key) && out[key] !== value) {
      const why = `CNI_ARGS: ${key} is given twice (${key}=${out[key]} and ${key}=${value})`;
      if (!warn) throw new CniError(CNI_CODES.INVALID_ENV, `${why}: which one is meant cannot be told; give it once`);
      warn(`${why}: the last one taken`);
    }
    out[key] = value;
  }
  return out;
}

function invalid(name: string, why: string): CniError {
  return new CniError(CNI_CODES.INVALID_ENV, `${name} ${why}`);
}

/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace, not '.' or '..'. */
export function checkIfname(name: string, source: string): string {
  if (name === '' || Buffer.byteLength(name) > 15 || /[\s/:]/.test(name) || name === '.' || name === '..') {
    throw invalid(source, `${JSON.stringify(name)} is not a valid interface name (1-15 characters, no spaces, '/' or ':')`);
  }
  return name;
}

/** The CNI_* environment; `warn` is where DEL's tolerated CNI_ARGS faults are said (parseCniArgs). */
export function readEnv(env: NodeJS.ProcessEnv, warn: (msg: string) => void = () => undefined): CniEnv {
  const command = env.CNI_COMMAND;
  if (!command) throw invalid('CNI_COMMAND', 'is not set (expected one of ' + VERBS.join(', ') + ')');
  if (!(VERBS as readonly string[]).includes(command)) throw invalid('CNI_COMMAND', `${JSON.stringify(command)} is unknown (expected one of ${VERBS.join(', ')})`);
  const verb = command as Verb;
  const perAttachment = verb === 'ADD' || verb === 'DEL' || verb === 'CHECK';
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  if (perAttachment) {
    if (containerId === '') throw invalid('CNI_CONTAINERID', `is not set (required for ${verb})`);
    if (!CONTAINER_ID.test(containerId)) throw invalid('CNI_CONTAINERID', `${JSON.stringify(containerId)} is malformed (alphanumerics, '_', '.', '-', starting with an alphanumeric)`);
    if (ifname === '') throw invalid('CNI_IFNAME', `is not set (required for ${verb})`);
    checkIfname(ifname, 'CNI_IFNAME');
    if (verb !== 'DEL' && netns === '') throw invalid('CNI_NETNS', `is not set (required for ${verb})`);
    if (netns !== '' && !netns.startsWith('/')) throw invalid('CNI_NETNS', `${JSON.stringify(netns)} is not an absolute path`);
  }
  let argsFaulty = false;
  const args = parseCniArgs(env.CNI_ARGS ?? '', verb === 'DEL' ? (m) => { argsFaulty = true; warn(m); } : undefined);
  const path = (env.CNI_PATH ?? '').split(':').filter((p) => p !== '');
  return { command: verb, containerId, netns, ifname, args, path, argsFaulty };
}
