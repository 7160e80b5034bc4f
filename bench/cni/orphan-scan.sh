#!/bin/bash
# What the CNI ADD's orphan scan costs (src/cni/orphan-hold.ts, dataplane/orphan-pods.ts
# readPodPeerAddresses), run on every ADD under the host-wide IPAM lock: N pod namespaces with a
# podway-style veth each (host side MAC ee:ee:ee:ee:ee:ee, the peer holding a /32) into a node
# namespace, 5 scans there, the median. Root; namespaces of its own, deleted on exit.
#   npx tsc -p . && flock /tmp/pw-bench.lock bash bench/cni/orphan-scan.sh
#   N=60 ROUTED=1|0 (podway run's host route to each pod, or none: all orphans) SKIP=true|false
#   (skipRouted: the ADD's scan; false: every pod's namespace read, as podway run's detection does)
set -u
N=${N:-60}; ROUTED=${ROUTED:-1}; SKIP=${SKIP:-true}
T=pwos$$; NODE=$T-node
DIST=$(cd "$(dirname "$0")/../../dist" && pwd)
cleanup() { for i in $(seq 1 "$N"); do ip netns del "$T-p$i" 2>/dev/null; done; ip netns del "$NODE" 2>/dev/null; }
trap cleanup EXIT
ip netns add "$NODE"
for i in $(seq 1 "$N"); do
  a=10.250.$((i / 250)).$((i % 250 + 1))
  ip netns add "$T-p$i"
  dev=calios$i # the node namespace is this script's own: plain names do
  ip -n "$NODE" link add "$dev" type veth peer name eth0 netns "$T-p$i"
  ip -n "$NODE" link set "$dev" address ee:ee:ee:ee:ee:ee up
  ip -n "$T-p$i" addr add "$a/32" dev eth0
  ip -n "$T-p$i" link set eth0 up
  [ "$ROUTED" = 1 ] && ip -n "$NODE" route add "$a/32" dev "$dev"
done
ip netns exec "$NODE" node -e "
const { readPodPeerAddresses } = require('$DIST/src/dataplane/orphan-pods');
(async () => {
  const t = []; let n = 0;
  for (let k = 0; k < 5; k++) {
    const s = process.hrtime.bigint();
    const r = await readPodPeerAddresses(new Set(), { skipRouted: $SKIP });
    t.push(Number(process.hrtime.bigint() - s) / 1e6); n = r.found.length;
  }
  t.sort((a, b) => a - b);
  console.log('pods $N, routed $ROUTED, skipRouted $SKIP: found ' + n + ', median ' + t[2].toFixed(1) + ' ms (' + t[0].toFixed(1) + '-' + t[4].toFixed(1) + ')');
})();"
