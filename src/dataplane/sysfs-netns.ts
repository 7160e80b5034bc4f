// Whether /sys/class/net shows this process's network namespace. sysfs shows the interfaces of
// the namespace it was mounted in: `ip netns exec NAME` mounts a fresh one for the command, but
// `nsenter --net=PATH` (or a setns without a new mount namespace) keeps the host's /sys, so
// podway's interface look-ups there (host.ts interfaceExists, interfaceAdminUp, ...) would see the
// wrong interfaces and never attach a pod. /proc/self/net/dev lists this process's namespace.
import { readdirSync, readFileSync } from 'node:fs';

function procNames(): Set<string> {
  const lines = readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2);
  return new Set(lines.map((l) => l.split(':')[0].trim()).filter((n) => n !== ''));
}

function sysfsNames(dir: string): Set<string> {
  // bonding_masters is a file of the bonding driver, not an interface
  return new Set(readdirSync(dir).filter((n) => n !== 'bonding_masters'));
}

function differ(a: Set<string>, b: Set<string>): string[] {
  return [...a].filter((n) => !b.has(n)).concat([...b].filter((n) => !a.has(n)));
}

/**
 * null when /sys/class/net lists the interfaces this process's namespace has, else why not (the
 * differing names). Read twice, so an interface made or removed between the two reads of one
 * pass is not taken for a mismatch. Unreadable files: null (nothing to say for sure).
 */
export function sysfsNetnsMismatch(dir = '/sys/class/net'): string | null {
  try {
    for (let i = 0; i < 2; i++) {
      const d = differ(procNames(), sysfsNames(dir));
      if (d.length === 0) return null;
      if (i === 1) {
        return `${dir} does not show this process's network namespace (it and /proc/self/net/dev differ in ${d.slice(0, 5).join(', ')}${d.length > 5 ? ', ...' : ''}): /sys was mounted in another namespace, as when podway is started with \`nsenter --net=\` instead of \`ip netns exec\`; podway finds pod interfaces through ${dir}, so no pod would be attached. Start it with \`ip netns exec NAME\`, or mount sysfs in its namespace (unshare -m, then mount -t sysfs sysfs /sys)`;
      }
    }
  } catch {
    return null;
  }
  return null;
}
