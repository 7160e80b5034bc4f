// Zero-copy packet header views and in-place builders. See layout.ts for the frame pool contract.
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
