/**
 * Making podway's nft refused, for real: a copy of a table created by `nft -i` with the owner flag
 * (NFT_TABLE_F_OWNER) belongs to that process's netlink socket, so every other nft process (podway's
 * installTunnelRx) gets EPERM on it, and it goes away when `nft -i` exits (end its stdin).
 */
import { TUNNEL_TABLE } from '../../src/dataplane/nft-tunnels';

/** What to write to `nft -i` (one command per line) to replace table inet podway_tunnels by an
 * owned copy of `program` (tunnelRxProgram's text). */
export function ownedTunnelTableInput(program: string): string {
  const block = program.slice(program.indexOf(`table inet ${TUNNEL_TABLE} {`)).split('\n').map((l) => l.trim()).filter(Boolean).join('\n').replace('{\n', '{\nflags owner;\n');
  // the block flattened onto one line: `{ a; b; }`
  return `add table inet ${TUNNEL_TABLE}\ndelete table inet ${TUNNEL_TABLE}\n${block.replace(/\{\n/g, '{ ').replace(/\n\}/g, '; }').replace(/\n/g, '; ')}\n`;
}
