#!/usr/bin/python3
"""Regenerates test/fixtures/scapy-frames6.json: IPv6, ICMPv6 and NDP frames crafted with scapy
(which computes lengths and checksums) for test/packet/ipv6*.test.ts and test/dataplane/pipeline6*.
Kept apart from gen-fixtures.py (IPv4) so either can change alone. The JSON is checked in so the
tests do not need scapy; run this after changing a frame:

    apt-get install -y python3-scapy && /usr/bin/python3 scripts/gen-fixtures6.py

Each fixture: name, description, hex, layers (scapy's dissection), optional build record. Names
starting with v6pipe_ use the addresses of test/dataplane/helpers6.ts.
"""
from scapy.all import (Ether, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
                       ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6TimeExceeded, ICMPv6PacketTooBig, ICMPv6ND_NS,
                       ICMPv6ND_NA, ICMPv6ND_RS, ICMPv6ND_RA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr,
                       ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, UDP, TCP, Raw, conf)

from scapy_fixtures import FixtureFile

conf.verb = 0

GW_MAC = "ee:ee:ee:ee:ee:ee"
GW6 = "fe80::ecee:eeff:feee:eeee"       # EUI-64 of ee:ee:ee:ee:ee:ee: Calico's IPv6 pod gateway
A_MAC = "2a:5f:10:00:01:01"             # pod A (veth caliA), as in test/dataplane/helpers.ts
B_MAC = "2a:5f:10:00:01:02"             # pod B (veth caliB)
A6 = "fd00:10:244::1"
B6 = "fd00:10:244::2"
RV6 = "fd00:10:244::41"                 # a pod on node2's block fd00:10:244::40/122
HOLE6 = "fd00:10:244::9"                # unallocated in node1's block fd00:10:244::/122
A_LL = "fe80::285f:10ff:fe00:101"       # pod A's link-local (EUI-64 of its MAC)
NODE1_6 = "fd99::1"
PAYLOAD = bytes(range(56))


frames = FixtureFile("scripts/gen-fixtures6.py", "scapy-frames6.json")
add = frames.add
raw_frame = frames.add  # a frame scapy cannot build as such (deliberately broken): bytes given, dissection best effort


def pod(src=A_MAC):
    return Ether(dst=GW_MAC, src=src)


# --- headers and the extension-header walk ---------------------------------------------------------
add("v6_udp", pod() / IPv6(src=A6, dst=B6, hlim=64, tc=0x2e, fl=0x12345) / UDP(sport=40000, dport=53) / Raw(b"odd udp payload"),
    "UDP over IPv6 (traffic class, flow label, odd payload length)",
    {"upper": 17, "l4": 54})
add("v6_ext_chain", pod() / IPv6(src=A6, dst=B6, hlim=64) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() /
    IPv6ExtHdrRouting(addresses=[B6]) / IPv6ExtHdrFragment(offset=0, m=0, id=7) / UDP(sport=1, dport=2) / Raw(b"x" * 8),
    "UDP after hop-by-hop, destination options, routing (type 0, one address) and an atomic fragment header",
    {"upper": 17, "l4": 54 + 8 + 8 + 24 + 8, "fragment": 1, "fragOffset": 0})
add("v6_fragment_later", pod() / IPv6(src=A6, dst=B6, hlim=64) / IPv6ExtHdrFragment(offset=185, m=1, id=8, nh=17) / Raw(b"y" * 16),
    "a non-first fragment (offset 185 * 8): the walk reports the fragment, not an upper-layer header",
    {"upper": 17, "l4": 62, "fragment": 1, "fragOffset": 185})
add("v6_ext_too_long", pod() / IPv6(src=A6, dst=B6, hlim=64) / (IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() /
    IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() /
    IPv6ExtHdrDestOpt()) / UDP(sport=1, dport=2),
    "nine destination-options headers: longer than podway walks (EXT_CHAIN_TOO_LONG)")
good = bytearray(bytes(pod() / IPv6(src=A6, dst=B6, hlim=64) / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2) / Raw(b"z" * 4)))
good[54 + 1] = 4  # hop-by-hop length 5 * 8 = 40 bytes: past the payload's 20
raw_frame("v6_ext_truncated", bytes(good), "hop-by-hop header whose length runs past the payload (BAD_EXT_HEADER)")
cut = bytes(pod() / IPv6(src=A6, dst=B6, hlim=64, plen=4, nh=60) / Raw(b"\x11\x00\x00\x00"))
raw_frame("v6_ext_cut", cut, "destination-options header cut after 4 bytes (BAD_EXT_HEADER)")
late_hbh = pod() / IPv6(src=A6, dst=B6, hlim=64) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2)
add("v6_hbh_not_first", late_hbh, "hop-by-hop header after another extension header (RFC 8200 4.3: BAD_EXT_HEADER)")

# --- ICMPv6 -----------------------------------------------------------------------------------------
add("v6_echo", pod() / IPv6(src=A6, dst=B6, hlim=64) / ICMPv6EchoRequest(id=0x1234, seq=1, data=PAYLOAD),
    "ping6 from pod A to pod B", {"upper": 58, "l4": 54})
add("v6_time_exceeded", Ether(dst=A_MAC, src=GW_MAC) / IPv6(src=NODE1_6, dst=A6, hlim=64) /
    ICMPv6TimeExceeded(code=0) / IPv6(src=A6, dst=B6, hlim=64) / ICMPv6EchoRequest(id=0x1234, seq=1, data=PAYLOAD),
    "time exceeded from the node about v6_echo (the whole packet quoted)",
    {"kind": "icmpv6_error", "from": "v6_echo", "type": 3, "code": 0, "word": 0, "src": NODE1_6, "hlim": 64})
big = pod() / IPv6(src=A6, dst=B6, hlim=64) / UDP(sport=5000, dport=6000) / Raw(bytes(i & 0xff for i in range(1400)))
add("v6_big", big, "1448-byte IPv6 packet (UDP 1400 B payload)")
quoted = bytes(big)[14:14 + 1232]
add("v6_packet_too_big", Ether(dst=A_MAC, src=GW_MAC) / IPv6(src=NODE1_6, dst=A6, hlim=64) / ICMPv6PacketTooBig(mtu=1430) / Raw(quoted),
    "packet too big (MTU 1430) about v6_big: the quote cut so the error fits in 1280 bytes",
    {"kind": "icmpv6_error", "from": "v6_big", "type": 2, "code": 0, "word": 1430, "src": NODE1_6, "hlim": 64})

# --- NDP ---------------------------------------------------------------------------------------------
ns = pod() / IPv6(src=A_LL, dst="ff02::1:ffee:eeee", hlim=255) / ICMPv6ND_NS(tgt=GW6) / ICMPv6NDOptSrcLLAddr(lladdr=A_MAC)
ns.dst = "33:33:ff:ee:ee:ee"
add("v6_ns_gw", ns, "pod A's neighbor solicitation for its gateway, multicast to the solicited-node group, with SLLA",
    {"upper": 58, "l4": 54})
add("v6_na_gw", Ether(dst=A_MAC, src=GW_MAC) / IPv6(src=GW6, dst=A_LL, hlim=255) /
    ICMPv6ND_NA(tgt=GW6, R=1, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=GW_MAC),
    "podway's answer to v6_ns_gw: router, solicited, override, target ee:ee:ee:ee:ee:ee",
    {"kind": "na", "from": "v6_ns_gw", "mac": GW_MAC, "router": True})
add("v6_ns_gw_nud", pod() / IPv6(src=A6, dst=GW6, hlim=255) / ICMPv6ND_NS(tgt=GW6),
    "pod A re-confirming the gateway (unicast NUD probe from its global address, no SLLA)")
add("v6_na_gw_nud", Ether(dst=A_MAC, src=GW_MAC) / IPv6(src=GW6, dst=A6, hlim=255) /
    ICMPv6ND_NA(tgt=GW6, R=1, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=GW_MAC),
    "the answer to v6_ns_gw_nud (Ethernet destination: the frame's source)",
    {"kind": "na", "from": "v6_ns_gw_nud", "mac": GW_MAC, "router": True})
dad = pod() / IPv6(src="::", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt=A6)
dad.dst = "33:33:ff:00:00:01"
add("v6_ns_dad", dad, "pod A's duplicate address detection for its own address (never answered)")
other = pod() / IPv6(src=A_LL, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=B6) / ICMPv6NDOptSrcLLAddr(lladdr=A_MAC)
other.dst = "33:33:ff:00:00:02"
add("v6_ns_other", other, "pod A soliciting pod B's address (not the gateway: not answered)")
rs = pod() / IPv6(src=A_LL, dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=A_MAC)
rs.dst = "33:33:00:00:00:02"
add("v6_rs", rs, "pod A's router solicitation with SLLA")
add("v6_ra", Ether(dst=A_MAC, src=GW_MAC) / IPv6(src=GW6, dst=A_LL, hlim=255) /
    ICMPv6ND_RA(chlim=64, M=0, O=0, routerlifetime=1800, reachabletime=0, retranstimer=0, prf=0) /
    ICMPv6NDOptSrcLLAddr(lladdr=GW_MAC) / ICMPv6NDOptMTU(mtu=1430),
    "podway's router advertisement answering v6_rs (pod MTU 1430: IPv6 VXLAN, no prefix)",
    {"kind": "ra", "from": "v6_rs", "mac": GW_MAC, "src": GW6, "mtu": 1430})
rs_dad = pod() / IPv6(src="::", dst="ff02::2", hlim=255) / ICMPv6ND_RS()
rs_dad.dst = "33:33:00:00:00:02"
add("v6_rs_unspec", rs_dad, "router solicitation from :: (answered to all-nodes)")
add("v6_ra_unspec", Ether(dst="33:33:00:00:00:01", src=GW_MAC) / IPv6(src=GW6, dst="ff02::1", hlim=255) /
    ICMPv6ND_RA(chlim=64, M=0, O=0, routerlifetime=1800, reachabletime=0, retranstimer=0, prf=0) /
    ICMPv6NDOptSrcLLAddr(lladdr=GW_MAC) / ICMPv6NDOptMTU(mtu=1430),
    "the answer to v6_rs_unspec", {"kind": "ra", "from": "v6_rs_unspec", "mac": GW_MAC, "src": GW6, "mtu": 1430})
add("v6_ra_from_router", Ether(dst="33:33:00:00:00:01", src="52:54:00:00:00:09") / IPv6(src="fe80::1", dst="ff02::1", hlim=255) /
    ICMPv6ND_RA(routerlifetime=600) / ICMPv6NDOptSrcLLAddr(lladdr="52:54:00:00:00:09") / ICMPv6NDOptMTU(mtu=1500) /
    ICMPv6NDOptPrefixInfo(prefix="2001:db8::", prefixlen=64),
    "a router advertisement with SLLA, MTU and prefix options (validates)")

ns_node = Ether(dst="33:33:ff:00:00:02", src="52:54:00:99:00:01") / IPv6(src=NODE1_6, dst="ff02::1:ff00:2", hlim=255) / \
    ICMPv6ND_NS(tgt="fd99::2") / ICMPv6NDOptSrcLLAddr(lladdr="52:54:00:99:00:01")
add("v6_ns_resolve", ns_node, "node1 resolving node2's underlay address fd99::2 (what podway sends for an IPv6 next hop)",
    {"kind": "ns", "mac": "52:54:00:99:00:01", "src": NODE1_6, "target": "fd99::2"})
add("v6_na_node2", Ether(dst="52:54:00:99:00:01", src="52:54:00:99:00:02") / IPv6(src="fd99::2", dst=NODE1_6, hlim=255) /
    ICMPv6ND_NA(tgt="fd99::2", R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr="52:54:00:99:00:02"),
    "node2's kernel answering v6_ns_resolve")

# Bad NDP: each must be dropped and counted, never answered.
bad = pod() / IPv6(src=A_LL, dst="ff02::1:ffee:eeee", hlim=64) / ICMPv6ND_NS(tgt=GW6) / ICMPv6NDOptSrcLLAddr(lladdr=A_MAC)
bad.dst = "33:33:ff:ee:ee:ee"
add("v6_ns_hlim64", bad, "neighbor solicitation with hop limit 64 (off-link: RFC 4861 7.1.1 says drop)")
b2 = bytearray(bytes(ns))
b2[14 + 40 + 24 + 1] = 0  # SLLA option length 0
raw_frame("v6_ns_optlen0", bytes(b2), "neighbor solicitation whose option has length 0 (checksum not fixed; see the test)",
          {"fix_icmpv6_checksum": True})
b3 = bytearray(bytes(ns))
b3[14 + 40 + 24 + 1] = 3  # SLLA option claims 24 bytes, only 8 present
raw_frame("v6_ns_opt_past_end", bytes(b3), "neighbor solicitation whose option runs past the message (checksum not fixed)",
          {"fix_icmpv6_checksum": True})
b4 = pod() / IPv6(src="::", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt=A6) / ICMPv6NDOptSrcLLAddr(lladdr=A_MAC)
b4.dst = "33:33:ff:00:00:01"
add("v6_ns_dad_slla", b4, "DAD solicitation from :: with a source link-layer option (RFC 4861 7.1.1: invalid)")
add("v6_ns_mcast_target", pod() / IPv6(src=A_LL, dst=GW6, hlim=255) / ICMPv6ND_NS(tgt="ff02::1"),
    "neighbor solicitation for a multicast target (invalid)")
b5 = bytearray(bytes(ns))
b5[14 + 40 + 2] ^= 0x55
raw_frame("v6_ns_bad_csum", bytes(b5), "v6_ns_gw with a broken ICMPv6 checksum")
b6 = pod() / IPv6(src=A_LL, dst="ff02::1:ffee:eeee", hlim=255) / ICMPv6ND_NS(tgt=GW6, code=1)
b6.dst = "33:33:ff:ee:ee:ee"
add("v6_ns_code1", b6, "neighbor solicitation with code 1 (invalid)")
add("v6_ns_short", pod() / IPv6(src=A_LL, dst=GW6, hlim=255) / ICMPv6EchoRequest(type=135, id=0, seq=0),
    "an 8-byte message of type 135: shorter than a neighbor solicitation")

# --- forwarding (test/dataplane/pipeline6*.test.ts) --------------------------------------------------
echo = IPv6(src=A6, dst=B6, hlim=64) / ICMPv6EchoRequest(id=0x4242, seq=3, data=PAYLOAD)
add("v6pipe_a_to_b", pod() / echo, "ping6 pod A -> pod B (same node)")
out = IPv6(src=A6, dst=B6, hlim=63) / ICMPv6EchoRequest(id=0x4242, seq=3, data=PAYLOAD)
add("v6pipe_a_to_b_out", Ether(dst=B_MAC, src=GW_MAC) / out, "v6pipe_a_to_b as delivered to pod B (hop limit 63)")
ext = IPv6(src=A6, dst=B6, hlim=64) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(sport=40001, dport=7000) / Raw(b"hello pod b")
add("v6pipe_a_to_b_ext", pod() / ext, "UDP A -> B behind hop-by-hop and destination options")
ext_out = IPv6(src=A6, dst=B6, hlim=63) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(sport=40001, dport=7000) / Raw(b"hello pod b")
add("v6pipe_a_to_b_ext_out", Ether(dst=B_MAC, src=GW_MAC) / ext_out, "v6pipe_a_to_b_ext as delivered")
add("v6pipe_b_to_a", pod(B_MAC) / IPv6(src=B6, dst=A6, hlim=64) / ICMPv6EchoReply(id=0x4242, seq=3, data=PAYLOAD),
    "B's reply to A")
add("v6pipe_a_spoof", pod() / IPv6(src="fd00:10:244::7", dst=B6, hlim=64) / UDP(sport=1, dport=2),
    "pod A sending from an IPv6 address that is not its own")
add("v6pipe_a_ll_src", pod() / IPv6(src=A_LL, dst=B6, hlim=64) / UDP(sport=1, dport=2),
    "pod A's link-local source towards pod B (link-local is never forwarded)")
add("v6pipe_a_to_hole", pod() / IPv6(src=A6, dst=HOLE6, hlim=64) / UDP(sport=1, dport=2),
    "pod A to an unallocated address of node1's block (blackholed)")
ttl1 = IPv6(src=A6, dst=B6, hlim=1) / ICMPv6EchoRequest(id=0x4242, seq=4, data=PAYLOAD)
add("v6pipe_a_hlim1", pod() / ttl1, "ping6 A -> B with hop limit 1")
add("v6pipe_a_hlim1_err", Ether(dst=A_MAC, src=GW_MAC) / IPv6(src=NODE1_6, dst=A6, hlim=64) / ICMPv6TimeExceeded(code=0) / ttl1,
    "time exceeded from node1's IPv6 address about v6pipe_a_hlim1")

frames.write()
