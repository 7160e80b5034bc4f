"""What scripts/gen-fixtures.py (IPv4) and scripts/gen-fixtures6.py (IPv6) share: a frame as a
fixture (name, description, hex, scapy's dissection of the bytes, optional build record) and the
JSON file the tests read. Imported from the script's own directory (python puts it on sys.path).
"""
import json
import os
import sys

from scapy.all import ConditionalField, Ether, Padding, Raw
from scapy import VERSION as SCAPY_VERSION

FIXTURES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures")


def conv(v):
    """JSON-friendly value of a scapy field."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.hex()
    if hasattr(v, "value"):  # FlagValue
        return int(v)
    if isinstance(v, (list, tuple)):
        return [bytes(x).hex() if hasattr(x, "fields_desc") else conv(x) for x in v]
    try:
        return int(v)
    except (TypeError, ValueError):
        return str(v)


def layers(pkt):
    """scapy's dissection: [{"layer": name, "fields": {...}}], outermost first."""
    out = []
    layer = pkt
    while layer is not None and len(layer.fields_desc) + len(getattr(layer, "load", b"")) > 0:
        if isinstance(layer, (Raw, Padding)):
            out.append({"layer": layer.__class__.__name__, "fields": {"load": layer.load.hex()}})
        else:
            # Skip conditional fields absent from this message (e.g. ICMP timestamps in an error).
            fields = {f.name: conv(layer.getfieldval(f.name)) for f in layer.fields_desc
                      if not (isinstance(f, ConditionalField) and not f._evalcond(layer))}
            out.append({"layer": layer.__class__.__name__, "fields": fields})
        layer = layer.payload if layer.payload else None
    return out


class FixtureFile:
    """The fixtures of one generator, in the order added, written as test/fixtures/<name>."""

    def __init__(self, generator, name):
        self.generator = generator
        self.path = os.path.join(FIXTURES_DIR, name)
        self.fixtures = []

    def add(self, name, pkt, description, build=None):
        """A frame (a scapy packet, or bytes scapy could not build as such); returns its bytes."""
        raw = bytes(pkt)
        # Re-dissected from the bytes, so computed fields (len, ihl, chksum) are reported.
        fx = {"name": name, "description": description, "hex": raw.hex(), "layers": layers(Ether(raw))}
        if build is not None:
            fx["build"] = build
        self.fixtures.append(fx)
        return raw

    def write(self):
        doc = {"generator": self.generator, "scapy": SCAPY_VERSION, "fixtures": self.fixtures}
        with open(self.path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"wrote {len(self.fixtures)} fixtures to {os.path.relpath(self.path)}", file=sys.stderr)
