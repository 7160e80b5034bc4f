#!/bin/bash
# What the CNI ADD's orphan scan costs (src/cni/orphan-hold.ts, dataplane/orphan-pods.ts
# readPodPeerAddresses), run on every ADD under the host-wide IPAM lock: N pod namespaces with a
# podway-style veth each (host side MAC ee:ee:ee:ee:ee:ee, the peer holding a /32) into a node
# namespace, 5 scans there, the median. Root; namespaces of its own, deleted on exit.
#   npx tsc -p . && flock /tmp/pw-bench.lock bash bench/cni/orphan-scan.sh
#   N=60 ROUTED=1|0 (podway run's host route to each pod, or none: all orphans) SKIP=true|false
#   (skipRouted: the ADD's scan; false: every pod's namespace read, as podway run's detection does)
#   DEVICES=1: podway run's start scan (devicesOf: also every namespace on the machine for the
#   tap/tun pods podway made for the node; one pod namespace in 10 holds such a tap instead of a
#   veth). MOD=path of a compiled orphan-pods.js to compare another version. Says the Node
#   process's CPU per scan and, from one more scan under strace, the processes a scan starts.
set -u
N=${N:-60}; ROUTED=${ROUTED:-1}; SKIP=${SKIP:-true}; DEVICES=${DEVICES:-0}
T=${T:-pwos$$}; NODE=$T-node
DIST=$(cd "$(dirname "$0")/../../dist" && pwd)
MOD=${MOD:-$DIST/src/dataplane/orphan-pods}
cleanup() { for i in $(seq 1 "$N"); do ip netns del "$T-p$i" 2>/dev/null; done; ip netns del "$NODE" 2>/dev/null; }
trap cleanup EXIT
ip netns add "$NODE"
for i in $(seq 1 "$N"); do
  a=10.250.$((i / 250)).$((i % 250 + 1))
  ip netns add "$T-p$i"
  if [ "$DEVICES" = 1 ] && [ $((i % 10)) = 0 ]; then
    ip -n "$T-p$i" tuntap add dev eth0 mode tap
    ip -n "$T-p$i" link property add dev eth0 altname "tap$(printf '%011x' "$i")"
    ip -n "$T-p$i" link set dev eth0 alias "podway:$NODE"
    ip -n "$T-p$i" addr add "$a/32" dev eth0
    continue
  fi
  dev=calios$i # the node namespace is this script's own: plain names do
  ip -n "$NODE" link add "$dev" type veth peer name eth0 netns "$T-p$i"
  ip -n "$NODE" link set "$dev" address ee:ee:ee:ee:ee:ee up
  ip -n "$T-p$i" addr add "$a/32" dev eth0
  ip -n "$T-p$i" link set eth0 up
  [ "$ROUTED" = 1 ] && ip -n "$NODE" route add "$a/32" dev "$dev"
done
OPTS="{ skipRouted: $SKIP$([ "$DEVICES" = 1 ] && echo ", devicesOf: '$NODE'") }"
SCAN="const { readPodPeerAddresses } = require('$MOD');"
ip netns exec "$NODE" node -e "$SCAN
(async () => {
  const t = [], c = []; let n = 0;
  for (let k = 0; k < 5; k++) {
    const s = process.hrtime.bigint(), u = process.cpuUsage();
    const r = await readPodPeerAddresses(new Set(), $OPTS);
    const d = process.cpuUsage(u);
    t.push(Number(process.hrtime.bigint() - s) / 1e6); c.push((d.user + d.system) / 1e3); n = r.found.length;
  }
  t.sort((a, b) => a - b); c.sort((a, b) => a - b);
  console.log('pods $N, routed $ROUTED, skipRouted $SKIP, devices $DEVICES: found ' + n + ', median ' + t[2].toFixed(1) + ' ms (' + t[0].toFixed(1) + '-' + t[4].toFixed(1) + '), node CPU median ' + c[2].toFixed(1) + ' ms');
})();"
# the processes one scan starts (those strace saw execve, the scan's node not counted), and how
# many of them the node process forked itself (a fork from its main thread: the start's cost)
ip netns exec "$NODE" strace -f -qq -e trace=execve,clone,clone3,fork,vfork -o "/tmp/$T.strace" node -e "$SCAN readPodPeerAddresses(new Set(), $OPTS);"
NODEPID=$(awk 'NR == 1 {print $1}' "/tmp/$T.strace")
echo "processes started by one scan: $(($(grep 'execve(' "/tmp/$T.strace" | awk '{print $1}' | sort -u | wc -l) - 1)), forked by node itself: $(grep -E "^$NODEPID +(clone|clone3|fork|vfork)\(" "/tmp/$T.strace" | grep -vc CLONE_THREAD)"
rm -f "/tmp/$T.strace"
