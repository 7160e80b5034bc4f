// A python3 script for e2e tests of decapsulated sources (martian-decap, rp-filter-live): VXLAN
// payloads (VNI 4096) around inner Ethernet/IPv4/UDP (to port 9999, payload MARK), each source twice,
// in the order given, sent from a UDP socket to DST:4789.
// argv: DST, inner dst MAC, inner dst IP, MARK, then the sources.
export const VXLAN_SOURCES_SENDER = String.raw`
import socket, struct, sys
dst, mac, dip, mark = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', '')), socket.inet_aton(sys.argv[3]), sys.argv[4].encode()
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for src in sys.argv[5:]:
    udp = struct.pack('!HHHH', 5555, 9999, 8 + len(mark), 0) + mark
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0, socket.inet_aton(src), dip)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    frame = mac + bytes.fromhex('66aabbccdd02') + b'\x08\x00' + ip + udp
    for _ in range(2):
        s.sendto(struct.pack('!BxxxI', 0x08, 4096 << 8) + frame, (dst, 4789))
`;
