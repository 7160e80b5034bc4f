#!/usr/bin/python3
"""Regenerates test/fixtures/scapy-frames.json: frames crafted with scapy (which computes lengths
and checksums) plus the field values scapy reports when it re-dissects the bytes. The JSON is
checked in so the tests do not need scapy; run this after changing a frame:

    apt-get install -y python3-scapy && /usr/bin/python3 scripts/gen-fixtures.py

Each fixture: name, hex (the frame), layers (scapy's dissection: [{"layer": name, "fields": {...}}]),
and, for frames our builders must reproduce byte-for-byte, a "build" object saying how.
"""
import json
import os
import sys

from scapy.all import (ARP, ConditionalField, ICMP, IP, TCP, UDP, VXLAN, Ether, IPOption_Router_Alert, IPOption_RR,
                       Padding, Raw, conf)
from scapy import VERSION as SCAPY_VERSION

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


def conv(v):
    """JSON-friendly value of a scapy field."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.hex()
    if hasattr(v, "value"):  # FlagValue
        return int(v)
    if isinstance(v, list):
        out = []
        for x in v:
            out.append(bytes(x).hex() if hasattr(x, "fields_desc") else conv(x))
        return out
    if isinstance(v, tuple):
        return [conv(x) for x in v]
    try:
        return int(v)
    except (TypeError, ValueError):
        return str(v)


def layers(pkt):
    out = []
    layer = pkt
    while layer is not None and not isinstance(layer, type(None)) and len(layer.fields_desc) + len(getattr(layer, "load", b"")) > 0:
        if isinstance(layer, (Raw, Padding)):
            out.append({"layer": layer.__class__.__name__, "fields": {"load": layer.load.hex()}})
        else:
            # Skip conditional fields absent from this message (e.g. ICMP timestamps in an error).
            fields = {f.name: conv(layer.getfieldval(f.name)) for f in layer.fields_desc
                      if not (isinstance(f, ConditionalField) and not f._evalcond(layer))}
            out.append({"layer": layer.__class__.__name__, "fields": fields})
        layer = layer.payload if layer.payload else None
    return out


fixtures = []


def add(name, pkt, description, build=None):
    raw = bytes(pkt)
    dissected = Ether(raw)  # re-dissect so computed fields (len, ihl, chksum) are reported
    fx = {"name": name, "description": description, "hex": raw.hex(), "layers": layers(dissected)}
    if build is not None:
        fx["build"] = build
    fixtures.append(fx)
    return raw


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
    IP(src=NODE1, dst=NODE2, ttl=64, id=0x4242, proto=4, tos=0x10, flags="DF") / inner_tcp,
    "Calico IPIP: outer TOS and DF copied from the inner header (RFC 2003 3.1)",
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

out = {"generator": "scripts/gen-fixtures.py", "scapy": SCAPY_VERSION, "fixtures": fixtures}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "scapy-frames.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"wrote {len(fixtures)} fixtures to {os.path.relpath(path)}", file=sys.stderr)
