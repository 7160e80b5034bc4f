// Key order shared by both backends: etcd orders keys by their UTF-8 bytes, so the embedded store
// must too, or a list would come back in a different order depending on the backend.

/**
 * podway's own keys in an etcd it shares with Calico: outside `/calico/`, which Calico's
 * components and calicoctl read (resources, IPAM, Felix's status), so nothing of theirs lists or
 * exports them. Only the etcd clients' create fences live here (etcd-fence.ts); an etcd with
 * authentication gives podway's user read and write on this prefix too.
 */
export const PODWAY_PREFIX = '/podway/';

/**
 * Compares two keys in UTF-8 byte order. JavaScript's `<` compares UTF-16 code units, which agrees
 * with UTF-8 except that surrogates (characters above U+FFFF) sort before U+E000..U+FFFF; the
 * fix-up below moves them after, as their 4-byte UTF-8 forms are.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let ca = a.charCodeAt(i);
    let cb = b.charCodeAt(i);
    if (ca === cb) continue;
    if (ca >= 0xd800 && cb >= 0xd800) {
      ca = ca >= 0xe000 ? ca - 0x800 : ca + 0x2000;
      cb = cb >= 0xe000 ? cb - 0x800 : cb + 0x2000;
    }
    return ca < cb ? -1 : 1;
  }
  return a.length - b.length;
}

/** The first byte string after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  // An empty prefix or all 0xff bytes: "every key from here on", which etcd spells "\0".
  return Buffer.from([0]);
}
