// Zero-copy packet header views and in-place builders. See layout.ts for the frame pool contract.
// Convenient for tests and tools. Hot-path code should import from the modules themselves
// (e.g. './packet/ipv4'): tsc compiles `export *` to getter properties, and calling through them
// measured 1.5-10x slower in bench/packet.ts.
export * from './layout';
export * from './drop';
export * from './bytes';
export * from './checksum';
export * from './ethernet';
export * from './arp';
export * from './ipv4';
export * from './icmp';
export * from './udp';
export * from './tcp';
export * from './vxlan';
export * from './ipip';
export * from './flowhash';
export * from './frame';
export * from './ipv6';
export * from './icmpv6';
export * from './ndp';
export * from './vxlan6';
export * from './martian';
export * from './ecn';
export * from './fragment';
