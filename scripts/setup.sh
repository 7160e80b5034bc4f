#!/usr/bin/env bash
# Installs the Debian packages podway's demo and tests use, only those that are missing.
# (Regenerating test/fixtures with scripts/gen-fixtures.py also needs python3-scapy.)
# Idempotent; needs root for apt-get (skipped with a note otherwise).
set -euo pipefail
need=()
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
[ -x /usr/bin/etcd ] || need+=(etcd-server) # the etcd datastore tests start a real etcd
command -v openssl >/dev/null || need+=(openssl) # the etcd TLS test makes its CA and certificates
[ -x /usr/lib/cni/host-local ] || need+=(containernetworking-plugins) # CNI tests delegate IPAM to host-local
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3) # bench/e2e tcp-bulk rows
[ -x /usr/bin/time ] || need+=(time) # bench/cni: each plugin call's CPU seconds and RSS (GNU time)
# test/cni/podman.test.ts: a real runtime (podman 4.3, CNI backend) with runc, busybox containers
[ -x /usr/bin/podman ] || need+=(podman)
[ -x /usr/bin/conmon ] || need+=(conmon)
[ -x /usr/sbin/runc ] || need+=(runc)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
# the containers' /bin/busybox must be the static one (a dynamic busybox has no libc in the container)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
# test/cni/podman-user.test.ts: `podman pod create` builds its pause image from catatonit; the bridge
# network beside podway's uses the reference plugins (bridge, host-local: /usr/lib/cni)
[ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -x /usr/sbin/bird ] || need+=(bird2) # the BGP speaker's tests peer with a real BIRD 2
[ -x /usr/bin/gobgpd ] || need+=(gobgpd) # ...and with GoBGP, a second implementation (test/bgp/gobgp.test.ts)
command -v nft >/dev/null 2>&1 || need+=(nftables) # podway's own tables: natOutgoing, tunnels on the underlay port (podway run needs it)
command -v traceroute >/dev/null 2>&1 || need+=(traceroute) # natOutgoing test: ICMP errors translated back
command -v python3 >/dev/null 2>&1 || need+=(python3) # e2e fragments: the fragmenting VXLAN-over-IPv6 sender and the pods' UDP echo
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd) # cli/run-start-checks: systemd-analyze verify of contrib/systemd/podway.service
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "podway setup: missing ${need[*]}; run as root (or install them) to use the demo and tests" >&2
  exit 0
fi
echo "podway setup: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# etcd-server's package starts a system etcd where a service manager runs; the tests start their own.
if [[ " ${need[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
# Likewise bird2's system BIRD: the BGP tests run their own on loopback.
if [[ " ${need[*]} " == *" bird2 "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now bird >/dev/null 2>&1 || true
fi
if [[ " ${need[*]} " == *" gobgpd "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now gobgpd >/dev/null 2>&1 || true
fi
