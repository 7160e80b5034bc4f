// `podway node status`: the BGP sessions of the running `podway run --bgp`, in the shape
// `calicoctl node status` prints them (BIRD's protocol state in STATE, the BGP state in INFO),
// or as JSON with the per-peer counters.
import { Command, Option } from 'commander';
import { controlRequest, NODE_TO_ASK_HELP } from '../dataplane/control-client';
import type { NodeStatus } from '../control/bgp/agent';

/** calicoctl's box table: headers centred (the odd space on the right), cells left-aligned. */
export function boxTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const centred = (text: string, w: number) => {
    const pad = w - text.length;
    return ' '.repeat(Math.floor(pad / 2)) + text + ' '.repeat(Math.ceil(pad / 2));
  };
  const line = (cells: readonly string[], fit: (t: string, w: number) => string) => '| ' + cells.map((c, i) => fit(c, widths[i]!)).join(' | ') + ' |';
  return [rule, line(headers, centred), rule, ...rows.map((r) => line(r, (t, w) => t.padEnd(w))), rule].join('\n') + '\n';
}

/** BIRD's `since`: the time of day for today, else the date (local time, as BIRD prints it). */
export function formatSince(iso: string, now = new Date()): string {
  const t = new Date(iso);
  const two = (n: number) => String(n).padStart(2, '0');
  if (t.toDateString() === now.toDateString()) return `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`;
  return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}`;
}

export function formatNodeStatus(status: NodeStatus, now = new Date()): string {
  const head = 'podway process is running.\n\n';
  if (!status.enabled) return `${head}BGP is not enabled on this node (podway run --bgp, or CALICO_NETWORKING_BACKEND=bird).\n`;
  const down = status.speakerError ? `The BGP speaker is not running: ${status.speakerError}${/^it starts once/.test(status.speakerError) ? '' : ' (podway tries again)'}.\n\n` : '';
  const listeners = status.listenerErrors?.length ? status.listenerErrors.map((e) => `The BGP speaker runs, but ${e}.\n`).join('') + '\n' : '';
  const cached = status.cachedSettings ? `BGP settings from the model cache (the model applied ${status.cachedSettings}): the datastore has not answered since podway started.\n\n` : '';
  const left = status.warnings?.length ? `Warnings:\n${status.warnings.map((w) => `  ${w}\n`).join('')}\n` : '';
  // calicoctl prints BIRD's sessions, then BIRD for IPv6's: here the IPv4 peers, then the IPv6 ones.
  const table = (v6: boolean) => {
    const rows = status.peers.filter((p) => p.address.includes(':') === v6).map((p) => [p.address, p.type, p.state, formatSince(p.since, now), p.info]);
    return rows.length === 0 ? `No IPv${v6 ? 6 : 4} peers found.\n` : boxTable(['PEER ADDRESS', 'PEER TYPE', 'STATE', 'SINCE', 'INFO'], rows);
  };
  return `${head}${down}${listeners}${cached}${left}IPv4 BGP status\n${table(false)}\nIPv6 BGP status\n${table(true)}\n`;
}

/** `podway node status [-o json]`; `controlPath` picks the socket as the other client commands do. */
export function addNodeCommands(program: Command, controlPath: (o: { node?: string; control?: string }) => string): void {
  const node = program.command('node').description('this node\'s BGP sessions (calicoctl node ...)');
  node
    .command('status')
    .description('show the BGP sessions of the running podway, as `calicoctl node status`')
    .option('--node <name>', NODE_TO_ASK_HELP)
    .option('--control <path>', 'control socket path')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (o) => {
      const res = (await controlRequest(controlPath(o), { cmd: 'node-status' })) as NodeStatus;
      process.stdout.write(o.output === 'json' ? JSON.stringify(res, null, 2) + '\n' : formatNodeStatus(res));
    });
}
