// The one rule for an interface name podway puts into a command, a file path or a rule: names
// come from the datastore (a WorkloadEndpoint's interfaceName, an IP pool's device) and from the
// node (its underlay), and end up in `ip -batch` lines (whitespace-split, `#` comments), in nft
// strings ("..."), and in sysctl paths (/proc/sys/net/ipv4/conf/NAME/...).
//
// The kernel's own rule (net/core/dev.c dev_valid_name): 1 to 15 bytes (IFNAMSIZ 16 with the NUL),
// not "." or "..", no '/', ':' or whitespace. Of those names only letters, digits and `_ . @ -`
// are taken: nothing that could close an nft string, start a comment or another argument, or
// need quoting anywhere. "." and ".." are refused like the kernel does (in a sysctl path they
// would climb a directory); dots elsewhere are fine ("eth0.100", a VLAN; "a..b").

/** The kernel's IFNAMSIZ: an interface name is at most IFNAMSIZ - 1 bytes. */
export const IFNAMSIZ = 16;

const SAFE_IFNAME = /^[A-Za-z0-9_.@-]{1,15}$/;

/** Whether `name` is an interface name podway uses as it is (see the file comment). */
export function isSafeIfname(name: string): boolean {
  return SAFE_IFNAME.test(name) && name !== '.' && name !== '..';
}
