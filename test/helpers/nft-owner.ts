/**
 * Making podway's nft refused, for real: a copy of a table created by `nft -i` with the owner flag
 * (NFT_TABLE_F_OWNER) belongs to that process's netlink socket, so every other nft process (podway's
 * installTunnelRx, NftNat) gets EPERM on it, and it goes away when `nft -i` exits (end its stdin).
 */
import { TUNNEL_TABLE } from '../../src/dataplane/nft-tunnels';

/** What to write to `nft -i` (one command per line) to replace table `family name` by an owned
 * copy of the one `program` (an `add table; delete table; table ... { }` text, as podway's) makes. */
export function ownedTableInput(program: string, family: 'inet' | 'ip', name: string): string {
  const block = program.slice(program.indexOf(`table ${family} ${name} {`)).split('\n').map((l) => l.replace(/(^|\s)#.*$/, '').trim()).filter(Boolean).join('\n').replace('{\n', '{\nflags owner;\n');
  // the block flattened onto one line, comments left out: `{ a; b; }`
  return `add table ${family} ${name}\ndelete table ${family} ${name}\n${block.replace(/\{\n/g, '{ ').replace(/\n\}/g, '; }').replace(/\n/g, '; ')}\n`;
}

/** The same for table inet podway_tunnels (tunnelRxProgram's text). */
export function ownedTunnelTableInput(program: string): string {
  return ownedTableInput(program, 'inet', TUNNEL_TABLE);
}
