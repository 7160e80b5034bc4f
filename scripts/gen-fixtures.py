#!/usr/bin/python3
"""Regenerates test/fixtures/scapy-frames.json: frames crafted with scapy (which computes lengths
and checksums) plus the field values scapy reports when it re-dissects the bytes. The JSON is
checked in so the tests do not need scapy; run this after changing a frame:

    apt-get install -y python3-scapy && /usr/bin/python3 scripts/gen-fixtures.py

Each fixture: name, hex (the frame), layers (scapy's dissection: [{"layer": name, "fields": {...}}]),
and, for frames our builders must reproduce byte-for-byte, a "build" object saying how.
"""
from scapy.all import (ARP, ICMP, IP, TCP, UDP, VXLAN, Ether, IPOption_Router_Alert, IPOption_RR, Padding, Raw, conf)

from scapy_fixtures import FixtureFile

conf.verb = 0

POD_MAC = "0a:58:0a:f4:01:05"
GW_MAC = "ee:ee:ee:ee:ee:ee"           # Calico answers every pod ARP with this MAC
NODE1_MAC = "52:54:00:12:34:56"
NODE2_MAC = "52:54:00:65:43:21"
VTEP1_MAC = "66:b2:9f:11:22:33"        # vxlan.calico on node 1
VTEP2_MAC = "66:b2:9f:44:55:66"        # vxlan.calico on node 2
POD1 = "10.244.1.5"
POD2 = "10.244.2.7"
NODE1 = "192.168.10.11"
NODE2 = "192.168.10.12"
GATEWAY = "169.254.1.1"
PAYLOAD = bytes(range(56))  # like ping's 56 data bytes


frames = FixtureFile("scripts/gen-fixtures.py", "scapy-frames.json")
add = frames.add


# --- ARP: a pod asks for its gateway; Calico proxy-ARPs with ee:ee:ee:ee:ee:ee -------------------
add("arp_request", Ether(dst="ff:ff:ff:ff:ff:ff", src=POD_MAC) /
    ARP(op=1, hwsrc=POD_MAC, psrc=POD1, hwdst="00:00:00:00:00:00", pdst=GATEWAY),
    "pod ARP request for 169.254.1.1")
add("arp_request_padded", Ether(dst="ff:ff:ff:ff:ff:ff", src=POD_MAC) /
    ARP(op=1, hwsrc=POD_MAC, psrc=POD1, hwdst="00:00:00:00:00:00", pdst=GATEWAY) / Padding(b"\x00" * 18),
    "same request padded to the 60-byte Ethernet minimum")
add("arp_reply", Ether(dst=POD_MAC, src=GW_MAC) /
    ARP(op=2, hwsrc=GW_MAC, psrc=GATEWAY, hwdst=POD_MAC, pdst=POD1),
    "reply to arp_request",
    {"kind": "arp_reply", "from": "arp_request", "mac": GW_MAC})

# --- ICMP echo -------------------------------------------------------------------------------------
echo_ip = IP(src=POD1, dst=POD2, ttl=64, id=0x1c46, flags="DF") / ICMP(type=8, id=0x1234, seq=1) / Raw(PAYLOAD)
add("icmp_echo_request", Ether(dst=GW_MAC, src=POD_MAC) / echo_ip, "ping from pod 1 to pod 2",
    {"kind": "emit", "eth": {"dst": GW_MAC, "src": POD_MAC},
     "ip": {"src": POD1, "dst": POD2, "ttl": 64, "id": 0x1c46, "flags": 2, "tos": 0},
     "icmp": {"type": 8, "code": 0, "rest": (0x1234 << 16) | 1}, "payload": PAYLOAD.hex()})
add("icmp_echo_reply", Ether(dst=POD_MAC, src=GW_MAC) /
    IP(src=POD2, dst=POD1, ttl=64, id=0x1c46, flags="DF") / ICMP(type=0, id=0x1234, seq=1) / Raw(PAYLOAD),
    "echo reply built in place from icmp_echo_request",
    {"kind": "echo_reply", "from": "icmp_echo_request", "ttl": 64})

# --- UDP / TCP -------------------------------------------------------------------------------------
add("udp_dns", Ether(dst=GW_MAC, src=POD_MAC) / IP(src=POD1, dst="10.96.0.10", ttl=64, id=0x0bad) /
    UDP(sport=40000, dport=53) / Raw(bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")),
    "DNS query over UDP (odd payload length: tests the padded checksum byte)",
    {"kind": "emit", "eth": {"dst": GW_MAC, "src": POD_MAC},
     "ip": {"src": POD1, "dst": "10.96.0.10", "ttl": 64, "id": 0x0bad, "flags": 0, "tos": 0},
     "udp": {"sport": 40000, "dport": 53},
     "payload": "abcd01000001000000000000076578616d706c6503636f6d0000010001"})
add("udp_zero_checksum", Ether(dst=GW_MAC, src=POD_MAC) / IP(src=POD1, dst=POD2, ttl=64, id=7) /
    UDP(sport=5000, dport=6000, chksum=0) / Raw(b"no checksum"),
    "UDP with checksum 0 (none computed), legal over IPv4")
add("tcp_syn", Ether(dst=GW_MAC, src=POD_MAC) / IP(src=POD1, dst=POD2, ttl=64, id=0x7a7a, flags="DF") /
    TCP(sport=43210, dport=80, flags="S", seq=0x01020304, window=64240,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("NOP", None), ("WScale", 7)]),
    "TCP SYN with options")
add("ipv4_options", Ether(dst=GW_MAC, src=POD_MAC) /
    IP(src=POD1, dst=POD2, ttl=64, id=0x0001, options=[IPOption_Router_Alert(), IPOption_RR(routers=["0.0.0.0"])]) /
    UDP(sport=1234, dport=5678) / Raw(b"opts"),
    "IPv4 with Router Alert + Record Route options (IHL 8)")
add("ipv4_fragment_first", Ether(dst=GW_MAC, src=POD_MAC) / IP(src=POD1, dst=POD2, ttl=64, id=0x0f0f, flags="MF", frag=0) /
    UDP(sport=1111, dport=2222, len=3000, chksum=0x1234) / Raw(bytes(64)),
    "first fragment (MF)")
add("ipv4_fragment_later", Ether(dst=GW_MAC, src=POD_MAC) / IP(src=POD1, dst=POD2, ttl=64, id=0x0f0f, flags=0, frag=185, proto=17) /
    Raw(bytes(range(40))),
    "last fragment (offset 185*8)")

# --- tunnels ---------------------------------------------------------------------------------------
inner_icmp = Ether(dst=VTEP2_MAC, src=VTEP1_MAC) / IP(src=POD1, dst=POD2, ttl=63, id=0x1c46, flags="DF") / \
    ICMP(type=8, id=0x1234, seq=1) / Raw(PAYLOAD)
vxlan_build = {"kind": "vxlan", "inner_hex": bytes(inner_icmp).hex(),
               "outer_dst_mac": NODE2_MAC, "outer_src_mac": NODE1_MAC, "src": NODE1, "dst": NODE2,
               "ttl": 64, "vni": 4096, "sport": 54321, "id": 0x2b2b,
               "inner_dst_mac": VTEP2_MAC, "inner_src_mac": VTEP1_MAC}
add("vxlan", Ether(dst=NODE2_MAC, src=NODE1_MAC) / IP(src=NODE1, dst=NODE2, ttl=64, id=0x2b2b) /
    UDP(sport=54321, dport=4789, chksum=0) / VXLAN(vni=4096, flags=0x08, NextProtocol=0) / inner_icmp,
    "Calico VXLAN (VNI 4096, port 4789, UDP checksum 0) carrying a pod ping", vxlan_build)
add("vxlan_udp_checksum", Ether(dst=NODE2_MAC, src=NODE1_MAC) / IP(src=NODE1, dst=NODE2, ttl=64, id=0x2b2c) /
    UDP(sport=54321, dport=4789) / VXLAN(vni=4096, flags=0x08, NextProtocol=0) / inner_icmp,
    "VXLAN with a computed outer UDP checksum")

inner_tcp = IP(src=POD1, dst=POD2, ttl=63, id=0x7a7a, flags="DF", tos=0x10) / TCP(sport=43210, dport=80, flags="S", seq=7, window=64240)
add("ipip", Ether(dst=NODE2_MAC, src=NODE1_MAC) /
    IP(src=NODE1, dst=NODE2, ttl=64, id=0x4242, proto=4, tos=0, flags="DF") / inner_tcp,
    "Calico IPIP: outer DSCP 0 (tunl0's tos 0, not inherit), ECN from the inner header (Not-ECT here), DF copied",
    {"kind": "ipip", "inner_hex": bytes(inner_tcp).hex(), "outer_dst_mac": NODE2_MAC, "outer_src_mac": NODE1_MAC,
     "src": NODE1, "dst": NODE2, "ttl": 64, "id": 0x4242})

# --- ICMP errors built in place from an offending frame --------------------------------------------
def icmp_error(name, original, icmp, src, ident, description, rest):
    original = Ether(bytes(original))  # built, so ihl/len/chksum are filled in
    ip = original[IP]
    ip_bytes = bytes(ip)
    hlen = ip.ihl * 4
    quote = ip_bytes[:hlen + 8]
    tos = (ip.tos & 0x1e) | 0xc0  # Linux icmp_send
    pkt = Ether(dst=original[Ether].src, src=original[Ether].dst) / \
        IP(src=src, dst=ip.src, ttl=64, id=ident, tos=tos, flags=0) / icmp / Raw(quote)
    add(name, pkt, description,
        {"kind": "icmp_error", "original_hex": bytes(original).hex(), "type": icmp.type, "code": icmp.code,
         "rest": rest, "src": src, "ttl": 64, "id": ident})


expiring = Ether(dst=GW_MAC, src=POD_MAC) / IP(src=POD1, dst=POD2, ttl=1, id=0x3333) / UDP(sport=33434, dport=33435) / Raw(bytes(32))
add("udp_ttl1", expiring, "traceroute probe with TTL 1")
icmp_error("icmp_time_exceeded", expiring, ICMP(type=11, code=0), NODE1, 0x0101,
           "time exceeded for udp_ttl1 (quotes IP header + 8 bytes)", 0)
too_big = Ether(dst=GW_MAC, src=POD_MAC) / IP(src=POD1, dst=POD2, ttl=64, id=0x4444, flags="DF", tos=0x28) / \
    UDP(sport=5001, dport=5002) / Raw(bytes(1472))
add("udp_1500_df", too_big, "1500-byte DF datagram, too big for a 1450 VXLAN MTU")
icmp_error("icmp_frag_needed", too_big, ICMP(type=3, code=4, nexthopmtu=1450), NODE1, 0x0202,
           "fragmentation needed, next-hop MTU 1450 (RFC 1191)", 1450)


# --- dataplane pipeline (test/dataplane): frames a port receives and the frames podway must send ---
# The cluster of test/dataplane/helpers.ts: node1 (podway under test) and node2 on 10.99.0.0/24;
# pools 10.244/16 VXLAN, 10.245/16 IPIP, 10.246/16 unencapsulated; /26 blocks .0 (node1) and .64
# (node2) in each. Fields podway chooses itself are 0 in the expected frames and checked apart by
# the tests: the IPv4 id of packets podway originates (outer tunnel headers, ICMP errors; the
# header checksum follows it) and the VXLAN UDP source port (a flow hash).
# Frames a TUN port carries (no Ethernet) are stored behind an all-zero Ethernet header, and frames
# of the VXLAN UDP / IPIP raw sockets with their outer headers: the tests cut them where the
# socket does. Inputs that are not valid frames (partial checksums) sit in "build.input_hex".
DP_NODE1, DP_NODE2 = "10.99.0.1", "10.99.0.2"
DP_NODE1_MAC, DP_NODE2_MAC = "52:54:00:99:00:01", "52:54:00:99:00:02"
DP_VTEP1_MAC, DP_VTEP2_MAC = "66:99:00:00:00:01", "66:99:00:00:00:02"
DP_A, DP_A_MAC = "10.244.0.1", "2a:5f:10:00:01:01"   # veth caliA
DP_B, DP_B_MAC = "10.244.0.2", "2a:5f:10:00:01:02"   # veth caliB
DP_T, DP_T_MAC = "10.245.0.3", "2a:5f:10:00:01:03"   # tap tapT (its MAC is not declared: learned)
DP_U = "10.246.0.4"                                 # tun tunU
DP_RV, DP_RV2, DP_RI, DP_RD = "10.244.0.65", "10.244.0.66", "10.245.0.65", "10.246.0.65"  # node2's pods
DP_HOLE = "10.244.0.9"                              # unallocated in node1's VXLAN block
NOETH = "00:00:00:00:00:00"


def dp(name, pkt, description, build=None):
    return add("pipe_" + name, pkt, description, build)


def dp_out(name, pkt, description, frm, adopt=(), l3=False, **extra):
    """An expected output: `frm` is the input fixture, `adopt` the fields podway picks, `l3` that
    the port carries it without Ethernet (compare from byte 14)."""
    b = {"kind": "pipeline", "from": "pipe_" + frm, "adopt": list(adopt), "l3": l3}
    b.update(extra)
    return add("pipe_" + name, pkt, description, b)


def dp_arp(name, mac, ip, target, description):
    return dp(name, Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) /
              ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=target), description)


dp_arp("arp_a_gw", DP_A_MAC, DP_A, GATEWAY, "pod A asks for its gateway")
dp_out("arp_a_gw_reply", Ether(dst=DP_A_MAC, src=GW_MAC) / ARP(op=2, hwsrc=GW_MAC, psrc=GATEWAY, hwdst=DP_A_MAC, pdst=DP_A),
       "podway's proxy ARP answer, sent back on pod A's port", "arp_a_gw")
dp_arp("arp_a_b", DP_A_MAC, DP_A, DP_B, "pod A asks for pod B (not the gateway: not answered)")
dp_arp("arp_b_gw", DP_B_MAC, DP_B, GATEWAY, "pod B asks for its gateway")
dp_arp("arp_t_gw", DP_T_MAC, DP_T, GATEWAY, "tap pod T asks for its gateway (podway learns T's MAC)")

# Local delivery A -> B: MACs rewritten, TTL 64 -> 63, header checksum from scapy's full recompute.
a_b = UDP(sport=40001, dport=7000) / Raw(b"hello pod b")
dp("a_to_b", Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src=DP_A, dst=DP_B, ttl=64, id=0x1111, flags="DF") / a_b, "pod A to pod B (same node)")
dp_out("a_to_b_out", Ether(dst=DP_B_MAC, src=GW_MAC) / IP(src=DP_A, dst=DP_B, ttl=63, id=0x1111, flags="DF") / a_b,
       "pod A to pod B as delivered to B", "a_to_b")
dp("a_spoof", Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src="10.244.0.7", dst=DP_B, ttl=64, id=0x1112) / a_b,
   "pod A sending from an address that is not its own")


def find_id(make, want):
    """The first IPv4 id for which want(header checksum) holds: edge cases of the incremental update."""
    for ident in range(1, 65536):
        if want(int.from_bytes(bytes(make(ident))[24:26], "big")):
            return ident
    raise RuntimeError("no id found")


# TTL decrement at the checksum's edges: before 0xfeff (after: 0x0000, never 0xffff) and 0xff42 (carry).
for label, want in (("feff", lambda c: c == 0xfeff), ("carry", lambda c: c >= 0xff01 and c != 0xffff)):
    mk = lambda ident: Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src=DP_A, dst=DP_B, ttl=64, id=ident) / a_b
    ident = find_id(mk, want)
    dp("a_to_b_csum_" + label, mk(ident), "pod A to pod B, header checksum chosen for an edge of the TTL update")
    dp_out("a_to_b_csum_%s_out" % label, Ether(dst=DP_B_MAC, src=GW_MAC) / IP(src=DP_A, dst=DP_B, ttl=63, id=ident) / a_b,
           "as delivered to B", "a_to_b_csum_" + label)

# VXLAN to node2: outer Ethernet to node2's MAC (when resolved), UDP 4789 checksum 0, VNI 4096,
# inner MACs the VTEPs', inner TTL 63.
a_rv = IP(src=DP_A, dst=DP_RV, ttl=64, id=0x2222, flags="DF") / UDP(sport=40002, dport=8080) / Raw(bytes(range(48)))
a_rv_fwd = IP(src=DP_A, dst=DP_RV, ttl=63, id=0x2222, flags="DF") / UDP(sport=40002, dport=8080) / Raw(bytes(range(48)))
dp("a_to_rv", Ether(dst=GW_MAC, src=DP_A_MAC) / a_rv, "pod A to a pod on node2 (VXLAN pool)")
dp_out("a_to_rv_vxlan", Ether(dst=DP_NODE2_MAC, src=DP_NODE1_MAC) / IP(src=DP_NODE1, dst=DP_NODE2, ttl=64, id=0, flags=0) /
       UDP(sport=0, dport=4789, chksum=0) / VXLAN(vni=4096, flags=0x08, NextProtocol=0) /
       Ether(dst=DP_VTEP2_MAC, src=DP_VTEP1_MAC) / a_rv_fwd,
       "a_to_rv encapsulated (outer id and UDP source port are podway's)", "a_to_rv", adopt=["outer_id", "vxlan_sport"])

# IPIP to node2 from the tap pod: outer TOS 0 (tunl0's: the inner DSCP is not copied, the inner ECN
# field is, Not-ECT here), DF copied from the inner header, protocol 4, and the inner TTL once
# forwarded (63): tunl0's ttl is 0, `inherit`, so ip_tunnel_xmit copies the inner header's.
t_ri = UDP(sport=40003, dport=9000) / Raw(b"over ipip")
dp("t_to_ri", Ether(dst=GW_MAC, src=DP_T_MAC) / IP(src=DP_T, dst=DP_RI, ttl=64, id=0x3333, flags="DF", tos=0x10) / t_ri,
   "tap pod T to a pod on node2 (IPIP pool)")
dp_out("t_to_ri_ipip", Ether(dst=DP_NODE2_MAC, src=DP_NODE1_MAC) /
       IP(src=DP_NODE1, dst=DP_NODE2, ttl=63, id=0, proto=4, tos=0, flags="DF") /
       IP(src=DP_T, dst=DP_RI, ttl=63, id=0x3333, flags="DF", tos=0x10) / t_ri,
       "t_to_ri encapsulated in IPIP (outer id is podway's)", "t_to_ri", adopt=["outer_id"])

# Unencapsulated pool, from the tun pod: out the underlay to node2's MAC.
u_rd = UDP(sport=40004, dport=9001) / Raw(b"direct")
dp("u_to_rd", Ether(dst=NOETH, src=NOETH) / IP(src=DP_U, dst=DP_RD, ttl=64, id=0x4444) / u_rd, "tun pod U to a pod on node2 (no encapsulation; L3)")
dp_out("u_to_rd_direct", Ether(dst=DP_NODE2_MAC, src=DP_NODE1_MAC) / IP(src=DP_U, dst=DP_RD, ttl=63, id=0x4444) / u_rd,
       "u_to_rd on the underlay", "u_to_rd")

# Decapsulation: VXLAN from node2 to pod A, and inner destinations that are not local pods.
def vxlan_in(inner_dst, ttl=63, vni=4096, l4=None):
    inner = IP(src=DP_RV, dst=inner_dst, ttl=ttl, id=0x5555) / (l4 or ICMP(type=0, id=0x77, seq=3) / Raw(PAYLOAD))
    return Ether(dst=DP_NODE1_MAC, src=DP_NODE2_MAC) / IP(src=DP_NODE2, dst=DP_NODE1, ttl=64, id=0x5151) / \
        UDP(sport=50000, dport=4789, chksum=0) / VXLAN(vni=vni, flags=0x08, NextProtocol=0) / \
        Ether(dst=DP_VTEP1_MAC, src=DP_VTEP2_MAC) / inner


dp("vxlan_rv_to_a", vxlan_in(DP_A), "VXLAN from node2 for pod A (the UDP socket gets it from byte 42)")
dp_out("vxlan_rv_to_a_out", Ether(dst=DP_A_MAC, src=GW_MAC) /
       IP(src=DP_RV, dst=DP_A, ttl=62, id=0x5555) / ICMP(type=0, id=0x77, seq=3) / Raw(PAYLOAD),
       "vxlan_rv_to_a decapsulated and delivered to A", "vxlan_rv_to_a")
dp("vxlan_rv_to_rv2", vxlan_in(DP_RV2), "VXLAN from node2 whose inner destination is node2's own pod")
dp("vxlan_rv_to_hole", vxlan_in(DP_HOLE), "VXLAN from node2 for an unallocated address of node1's block")

# IPIP from node2 to the tap pod (raw socket: from byte 14).
ri_t = UDP(sport=40005, dport=9002) / Raw(b"back over ipip")
dp("ipip_ri_to_t", Ether(dst=DP_NODE1_MAC, src=DP_NODE2_MAC) / IP(src=DP_NODE2, dst=DP_NODE1, ttl=64, id=0x6161, proto=4) /
   IP(src=DP_RI, dst=DP_T, ttl=63, id=0x6666) / ri_t, "IPIP from node2 for tap pod T")
dp_out("ipip_ri_to_t_out", Ether(dst=DP_T_MAC, src=GW_MAC) / IP(src=DP_RI, dst=DP_T, ttl=62, id=0x6666) / ri_t,
       "ipip_ri_to_t delivered to T", "ipip_ri_to_t")

# Unencapsulated from node2 on the underlay, for the tun pod.
rd_u = UDP(sport=40006, dport=9003) / Raw(b"direct back")
dp("underlay_rd_to_u", Ether(dst=DP_NODE1_MAC, src=DP_NODE2_MAC) / IP(src=DP_RD, dst=DP_U, ttl=64, id=0x7777) / rd_u,
   "unencapsulated pool traffic from node2 for tun pod U")
dp_out("underlay_rd_to_u_out", Ether(dst=NOETH, src=NOETH) / IP(src=DP_RD, dst=DP_U, ttl=63, id=0x7777) / rd_u,
       "underlay_rd_to_u delivered to U (L3)", "underlay_rd_to_u", l3=True)

# The node's own stack (host TUN) to pod A: originated by the node, so the TTL stays.
host_a = IP(src=DP_NODE1, dst=DP_A, ttl=64, id=0x8888) / ICMP(type=8, id=0x99, seq=1) / Raw(PAYLOAD)
dp("host_to_a", Ether(dst=NOETH, src=NOETH) / host_a, "the node pings pod A through the host port (L3)")
dp_out("host_to_a_out", Ether(dst=DP_A_MAC, src=GW_MAC) / host_a, "host_to_a delivered to A, TTL unchanged", "host_to_a")


# ICMP errors podway sends back to a pod: from the node IP, TTL 64, TOS (tos & 0x1e) | 0xc0, MACs
# back to the pod, quoting the offending IP header + 8 bytes (the header as received).
def dp_icmp_error(original, icmp, l3):
    ip = Ether(bytes(original))[IP]
    quote = bytes(ip)[:ip.ihl * 4 + 8]
    eth = Ether(dst=NOETH, src=NOETH) if l3 else Ether(dst=DP_A_MAC, src=GW_MAC)
    return eth / IP(src=DP_NODE1, dst=ip.src, ttl=64, id=0, tos=(ip.tos & 0x1e) | 0xc0, flags=0) / icmp / Raw(quote)


ttl1 = Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src=DP_A, dst=DP_RV, ttl=1, id=0x9999, tos=0x28) / UDP(sport=33434, dport=33435) / Raw(bytes(32))
dp("a_ttl1", ttl1, "traceroute probe from pod A with TTL 1")
dp_out("a_ttl1_icmp", dp_icmp_error(ttl1, ICMP(type=11, code=0), False), "time exceeded back to pod A (id is podway's)",
       "a_ttl1", adopt=["id"])
u_ttl1 = Ether(dst=NOETH, src=NOETH) / IP(src=DP_U, dst=DP_RD, ttl=1, id=0x9a9a) / UDP(sport=33434, dport=33436) / Raw(bytes(16))
dp("u_ttl1", u_ttl1, "traceroute probe from tun pod U with TTL 1 (L3)")
dp_out("u_ttl1_icmp", dp_icmp_error(u_ttl1, ICMP(type=11, code=0), True), "time exceeded back to U (L3, id is podway's)",
       "u_ttl1", adopt=["id"], l3=True)
quoted = IP(src=DP_RV, dst=DP_A, ttl=60, id=0x1357) / UDP(sport=53, dport=40007, len=20, chksum=0x1234)
dp("a_ttl1_icmperr", Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src=DP_A, dst=DP_RV, ttl=1, id=0x9b9b) /
   ICMP(type=3, code=3) / Raw(bytes(quoted)[:28]),
   "pod A sends an ICMP port unreachable with TTL 1: no ICMP error about an ICMP error")

big = UDP(sport=5001, dport=5002) / Raw(bytes(1451 - 28))
big_df = Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src=DP_A, dst=DP_RV, ttl=64, id=0xaaaa, flags="DF") / big
dp("a_big_df", big_df, "1451-byte DF datagram from pod A to node2: one byte over the VXLAN MTU")
dp_out("a_big_df_icmp", dp_icmp_error(big_df, ICMP(type=3, code=4, nexthopmtu=1450), False),
       "fragmentation needed, next-hop MTU 1450, back to pod A (id is podway's)", "a_big_df", adopt=["id"])
dp("a_big_nodf", Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src=DP_A, dst=DP_RV, ttl=64, id=0xaaab) / big,
   "the same without DF: podway does not fragment, it drops")
dp("a_max_df", Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src=DP_A, dst=DP_RV, ttl=64, id=0xaaac, flags="DF") /
   UDP(sport=5001, dport=5002) / Raw(bytes(1450 - 28)), "1450-byte DF datagram: exactly the VXLAN MTU")


# A VXLAN packet from node2 whose inner TTL runs out here: the time exceeded goes from node1's IP back
# to the sender through the tunnel (inner and outer ids and the UDP source port are podway's).
rv_ttl1 = vxlan_in(DP_A, ttl=1, l4=UDP(sport=33434, dport=33437) / Raw(bytes(24)))
dp("vxlan_rv_to_a_ttl1", rv_ttl1, "VXLAN from node2 for pod A with inner TTL 1 (a traceroute probe)")
rv_ttl1_ip = rv_ttl1[VXLAN][IP]
dp_out("vxlan_rv_to_a_ttl1_icmp", Ether(dst=DP_NODE2_MAC, src=DP_NODE1_MAC) / IP(src=DP_NODE1, dst=DP_NODE2, ttl=64, id=0, flags=0) /
       UDP(sport=0, dport=4789, chksum=0) / VXLAN(vni=4096, flags=0x08, NextProtocol=0) /
       Ether(dst=DP_VTEP2_MAC, src=DP_VTEP1_MAC) /
       IP(src=DP_NODE1, dst=DP_RV, ttl=64, id=0, tos=0xc0, flags=0) / ICMP(type=11, code=0) /
       Raw(bytes(rv_ttl1_ip)[:28]),
       "time exceeded for vxlan_rv_to_a_ttl1, back to node2 through VXLAN", "vxlan_rv_to_a_ttl1",
       adopt=["outer_id", "vxlan_sport", "inner_id"])


# Partial checksums (veth offload): the L4 field holds the folded pseudo-header sum, not the checksum.
def fold(s):
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    return s


def partial(frame):
    raw = bytearray(bytes(frame))
    ip = Ether(bytes(frame))[IP]
    hl = ip.ihl * 4
    l4len = ip.len - hl
    at = 14 + hl + (16 if ip.proto == 6 else 6)
    words = bytes(raw[26:34])
    s = sum(int.from_bytes(words[i:i + 2], "big") for i in range(0, 8, 2)) + ip.proto + l4len
    raw[at:at + 2] = fold(s).to_bytes(2, "big")
    return raw.hex()


for proto, l4 in (("tcp", TCP(sport=40008, dport=443, flags="PA", seq=1000, ack=2000, window=502) / Raw(b"partial tcp payload")),
                  ("udp", UDP(sport=40009, dport=4433) / Raw(b"odd udp payload"))):
    sent = Ether(dst=GW_MAC, src=DP_A_MAC) / IP(src=DP_A, dst=DP_B, ttl=64, id=0xbbbb, flags="DF") / l4
    dp_out("a_to_b_partial_%s_out" % proto, Ether(dst=DP_B_MAC, src=GW_MAC) / IP(src=DP_A, dst=DP_B, ttl=63, id=0xbbbb, flags="DF") / l4,
           "pod A to pod B with a partial %s checksum (build.input_hex, CSUM_PARTIAL) completed by podway" % proto.upper(),
           "a_to_b_partial_" + proto, input_hex=partial(sent))

frames.write()
