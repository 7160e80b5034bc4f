// The network namespaces a benchmark makes (a node, its uplink, pods), as bench/cni/run.ts and
// bench/startup.ts both need them: each made with its loopback up, remembered, and deleted by
// removeAll() in reverse order (also after a failed run).
import { execFileSync } from 'node:child_process';

const ip = (args: string[]): void => void execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });

export class BenchNamespaces {
  private readonly names: string[] = [];

  /** A new namespace `name`, loopback up. */
  add(name: string): string {
    ip(['netns', 'add', name]);
    this.names.push(name);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /**
   * The node's underlay: namespaces `nodeNs` (10.99.0.1/24) and `upNs` (10.99.0.254/24) made and
   * joined by a veth named eth0 on both sides, up.
   */
  uplink(nodeNs: string, upNs: string): void {
    this.add(nodeNs);
    this.add(upNs);
    ip(['link', 'add', 'eth0', 'netns', nodeNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', upNs]);
    ip(['-n', nodeNs, 'addr', 'add', '10.99.0.1/24', 'dev', 'eth0']);
    ip(['-n', upNs, 'addr', 'add', '10.99.0.254/24', 'dev', 'eth0']);
    ip(['-n', nodeNs, 'link', 'set', 'eth0', 'up']);
    ip(['-n', upNs, 'link', 'set', 'eth0', 'up']);
  }

  /** Deletes namespace `name` now (a pod's, after its DEL). */
  drop(name: string): void {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    const i = this.names.indexOf(name);
    if (i >= 0) this.names.splice(i, 1);
  }

  /** Deletes every namespace still here, the last made first. */
  removeAll(): void {
    for (const ns of this.names.reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    this.names.length = 0;
  }
}
