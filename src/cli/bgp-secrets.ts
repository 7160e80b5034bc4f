// BGPPeer passwords (spec.password.secretKeyRef) without Kubernetes: `podway run --bgp-secrets DIR`
// reads the key `key` of secret `name` from DIR/name/key, the layout of a Kubernetes secret mounted
// as a volume (one file per key). A trailing newline (from `echo`) is not part of the password.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

const PART = /^[A-Za-z0-9._-]+$/;

/** The secret's value, or undefined when it is not there (or the names could leave DIR). */
export function secretFromDir(dir: string, name: string, key: string): string | undefined {
  if (!PART.test(name) || !PART.test(key) || name.startsWith('.') || key.startsWith('.')) return undefined;
  try {
    return readFileSync(path.join(dir, name, key), 'utf8').replace(/\r?\n$/, '');
  } catch {
    return undefined;
  }
}
