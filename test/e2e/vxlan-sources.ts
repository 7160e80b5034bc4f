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

// The sources of IPv4/UDP frames to port 9999 carrying MARK on IFACE, printed on one line: for SECS
// (a bound on a hang), or until LAST's second one when given.
// argv: IFACE, MARK, SECS[, LAST].
export const VXLAN_SOURCES_SNIFFER = String.raw`
import socket, sys, time, select
iface, mark, secs = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
last = sys.argv[4] if len(sys.argv) > 4 else None
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((iface, 0))
print('ready', flush=True)
end = time.time() + secs
seen = []
while time.time() < end and (last is None or seen.count(last) < 2):
    r, _, _ = select.select([s], [], [], max(0.0, end - time.time()))
    if not r: continue
    f = s.recv(65535)
    ip = f[14:]
    if len(ip) < 28 or ip[9] != 17: continue
    hl = (ip[0] & 15) * 4
    if ip[hl + 2:hl + 4] != b'\x27\x0f' or mark not in ip[hl + 8:]: continue
    seen.append(socket.inet_ntoa(ip[12:16]))
print(' '.join(seen), flush=True)
`;
