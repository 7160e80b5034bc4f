/** Plain-text tables for the CLI (calicoctl-like upper-case headers). */
export function table(rows: Record<string, unknown>[], columns?: string[]): string {
  if (rows.length === 0) return '(none)\n';
  // Every row's keys, in the order first seen: a column only some rows have (a port's txRejected,
  // txBacklog, lastError) must show even when the first row lacks it.
  const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (Array.isArray(v) ? v.join(',') : v === null || v === undefined ? '' : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n') + '\n';
}

/**
 * A list for a one-line status field: all of it up to `max` items, else how many and the first
 * `max` ("300: a, b, ... and 292 more (-o json lists all)"), so `podway status` stays short at
 * scale; JSON keeps the whole list.
 */
export function listSummary(items: readonly string[], max = 8): string {
  if (items.length <= max) return items.join(', ');
  return `${items.length}: ${items.slice(0, max).join(', ')} and ${items.length - max} more (-o json lists all)`;
}

/**
 * `podway status`'s host changes: a per-interface sysctl set alike on more than `examples`
 * interfaces ("net.ipv6.conf.caliX.accept_ra=0 (was 1)" on every pod veth) is one line, with the
 * count and the first few interfaces; every other change (`all`, `default`, one interface's) as it
 * is, in first-seen order. JSON keeps one entry per change.
 */
export function summarizeHostChanges(changes: readonly string[], examples = 3): string[] {
  const groups = new Map<string, { at: number[]; ifs: string[]; lines: string[] }>();
  const out: { at: number; text: string }[] = [];
  changes.forEach((c, i) => {
    const m = /^(net\.ipv[46]\.conf\.)([^.=\s]+)(\..*)$/.exec(c);
    if (m === null || m[2] === 'all' || m[2] === 'default') {
      out.push({ at: i, text: c });
      return;
    }
    const key = `${m[1]}\0${m[3]}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { at: [], ifs: [], lines: [] }));
    g.at.push(i);
    g.ifs.push(m[2]);
    g.lines.push(c);
  });
  for (const [key, g] of groups) {
    if (g.ifs.length <= examples) {
      g.lines.forEach((text, k) => out.push({ at: g.at[k], text }));
      continue;
    }
    const [pre, post] = key.split('\0');
    out.push({ at: g.at[0], text: `${pre}IF${post} on ${g.ifs.length} interfaces: ${g.ifs.slice(0, examples).join(', ')} and ${g.ifs.length - examples} more (-o json lists all)` });
  }
  return out.sort((a, b) => a.at - b.at).map((o) => o.text);
}

/**
 * What the pod guard (table inet podway, nft-nat.ts guardTableProgram) guards, for `podway status`
 * and the log: the veth pods whose frames the node's kernel also gets (their sources and tunnel
 * packets checked), and with endpoint-to-host drop every local pod's addresses, veth, TAP and TUN
 * alike (their new connections to the node dropped, whichever way they reach it).
 */
export function guardSummary(g: { pods: number; podIps4?: number; podIps6?: number; endpointToHost: string }): string {
  const veth = `${g.pods} veth pod${g.pods === 1 ? '' : 's'} (forged sources and tunnel packets dropped)`;
  if (g.endpointToHost !== 'drop') return `${veth}; endpoint-to-host ${g.endpointToHost}`;
  return `${veth}; endpoint-to-host drop: new connections to the node from every local pod, veth, TAP and TUN (${g.podIps4 ?? 0} IPv4 and ${g.podIps6 ?? 0} IPv6 pod addresses)`;
}

/**
 * The natOutgoingExclusions mode in effect, for the `nat:` / `nat6:` lines of `podway status`
 * (`--nat-outgoing-exclusions`, FELIX_NATOUTGOINGEXCLUSIONS), with what it means for a natOutgoing
 * pod's traffic to another node's address (nft-nat.ts natSelectors). '' when the running podway did
 * not say (an older one). `natPools`: how many pools have natOutgoing (0: the mode alone).
 */
export function natExclusionsText(mode: string | undefined, natPools = 1): string {
  if (mode === undefined) return '';
  // with no natOutgoing pool nothing is masqueraded: the meaning would contradict it
  if (natPools === 0) return `; natOutgoingExclusions ${mode}`;
  const meaning = mode === 'IPPoolsOnly' ? 'to other nodes: the TCP connections and pings a pod opens are masqueraded'
    : mode === 'IPPoolsAndHostIPs' ? 'to other nodes: the pod\'s address' : null;
  return `; natOutgoingExclusions ${mode}${meaning ? ` (${meaning})` : ''}`;
}

/** A duration for a status line: "42 s", "3 min 12 s", "2 h 5 min", "3 d 4 h". */
export function ageText(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/**
 * `podway status`'s word on the Node a cached model was written for (run.ts cachedModel.nodeCheck):
 * not compared with the datastore's yet (it has not answered: a deleted Node's cache cannot be told
 * apart), the same Node, or another one's state, withdrawn.
 */
export function cachedNodeText(c: { nodeCheck?: string; notThisNode?: string }): string {
  if (c.nodeCheck === 'not compared yet') return '; its Node not compared with the datastore\'s yet (no answer)';
  if (c.nodeCheck === 'same Node') return '; its Node is the datastore\'s';
  if (c.nodeCheck === 'withdrawn') return `; not this node's state (${c.notThisNode ?? '?'}): its endpoints, routes and tunnel addresses withdrawn`;
  return '';
}

/**
 * The reverse-path filtering podway applies to decapsulated IPv4 (engine status `rpFilter`: the
 * node's net.ipv4.conf all/default rp_filter, as its tunnel devices would have it, read again while
 * running: `change` its last change), for the underlay line of `podway status`. '' from a podway that did not say (an older one).
 */
export function rpFilterText(rp: number | undefined, change?: { at: string; was: number } | null): string {
  if (rp === undefined) return '';
  const what = rp === 1 ? 'strict: a decapsulated source must route back through the tunnel it came in on'
    : rp === 2 ? 'loose' : 'off';
  // read again while running (status rpFilterChange): the last change, when
  const changed = change ? `; was ${change.was} until ${change.at}` : '';
  return `; rp_filter ${rp} (${what}; martian and own sources dropped at any setting${changed})`;
}

/** How long a new model thread must run to be stable (`--model-thread-stable-after`), in words:
 * "a minute" (the default), else "N s" (the log, status and /readyz; model-source.ts). */
export function stableAfterWords(ms: number): string {
  return ms === 60_000 ? 'a minute' : `${Math.round(ms / 100) / 10} s`;
}

/** Log lines podway dropped (observe/log.ts fdLines: its stderr full and not read, or gone), said
 * only when there were any (null otherwise: the status line lists leave nulls out). */
export function logDroppedLine(n: unknown): string | null {
  return typeof n === 'number' && n > 0 ? `log: ${n} line${n === 1 ? '' : 's'} dropped (podway's stderr was full and not read, or gone; podway_log_lines_dropped_total)` : null;
}
