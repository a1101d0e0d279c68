#!/usr/bin/env bash
# Capture real VRRPv3-over-IPv6 advertisements and the unsolicited Neighbor
# Advertisements keepalived sends with them, as test vectors.
#
# Usage: capture-keepalived-ipv6.sh OUTFILE [SECONDS]
#   SECONDS: how long keepalived runs (default 8; it needs ~3 s before its first advert)
#
# As capture-keepalived.sh, but over IPv6: two network namespaces joined by a
# veth pair with fixed MACs 02:00:00:00:00:01 / :02 (so the link-local
# addresses are fe80::ff:fe00:1 / fe80::ff:fe00:2, EUI-64), 2001:db8::1/64 and
# 2001:db8::2/64 (documentation range, RFC 3849), Duplicate Address Detection
# off in both. keepalived (VRRP only, vrid 51, priority 150, advert_int 1,
# vrrp_version 3, VIPs fe80::51/64 and 2001:db8:99::1/64) runs in the first,
# tcpdump (`ip6 proto 112` and ICMPv6 type 136) in the second. Every captured
# packet (IPv6 header included, link layer stripped) is written as one hex
# line to OUTFILE. Everything it made is torn down on exit.
# Needs root, iproute2, keepalived and tcpdump.

set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 OUTFILE [SECONDS]" >&2
    exit 64
fi
out=$1
seconds=${2:-8}

ns_kad="rcbsdt6-$$-kad"
ns_cap="rcbsdt6-$$-cap"
if_kad="rk6$$a"
if_cap="rk6$$b"
work=$(mktemp -d)
kad_pid=""
dump_pid=""

cleanup() {
    set +e
    [[ -n $kad_pid ]] && kill "$kad_pid" 2>/dev/null && wait "$kad_pid" 2>/dev/null
    [[ -n $dump_pid ]] && kill "$dump_pid" 2>/dev/null && wait "$dump_pid" 2>/dev/null
    ip netns del "$ns_kad" 2>/dev/null
    ip netns del "$ns_cap" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$ns_kad"
ip netns add "$ns_cap"
for ns in "$ns_kad" "$ns_cap"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip link add "$if_kad" address 02:00:00:00:00:01 type veth peer name "$if_cap" address 02:00:00:00:00:02
ip link set "$if_kad" netns "$ns_kad"
ip link set "$if_cap" netns "$ns_cap"
ip -n "$ns_kad" addr add 2001:db8::1/64 dev "$if_kad" nodad
ip -n "$ns_cap" addr add 2001:db8::2/64 dev "$if_cap" nodad
ip -n "$ns_kad" link set lo up
ip -n "$ns_cap" link set lo up
ip -n "$ns_kad" link set "$if_kad" up
ip -n "$ns_cap" link set "$if_cap" up

cat >"$work/keepalived.conf" <<CONF
global_defs {
    router_id rcbsd_vectors
    vrrp_version 3
    enable_script_security
}
vrrp_instance VI_51 {
    state MASTER
    interface $if_kad
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        fe80::51/64
        2001:db8:99::1/64
    }
}
CONF

ip netns exec "$ns_cap" tcpdump -i "$if_cap" -n -U -w "$work/capture.pcap" \
    'ip6 proto 112 or (icmp6 and ip6[40] == 136)' 2>"$work/tcpdump.log" &
dump_pid=$!
sleep 1

ip netns exec "$ns_kad" keepalived -n -l -D -P -f "$work/keepalived.conf" \
    -p "$work/keepalived.pid" -r "$work/vrrp.pid" >"$work/keepalived.log" 2>&1 &
kad_pid=$!

sleep "$seconds"
kill "$kad_pid"
wait "$kad_pid" || true
kad_pid=""
sleep 0.5
kill "$dump_pid"
wait "$dump_pid" || true
dump_pid=""

{
    echo "# keepalived $(keepalived --version 2>&1 | head -n1 | awk '{print $2}'), IPv6:"
    echo "# vrid 51, priority 150, advert_int 1, VIPs fe80::51/64 2001:db8:99::1/64,"
    echo "# interface MAC 02:00:00:00:00:01, src fe80::ff:fe00:1"
    tcpdump -r "$work/capture.pcap" -n -x 2>/dev/null | awk '
        /^[^ \t]/ { if (hex != "") print hex; hex = ""; next }
        /^[ \t]+0x/ { for (i = 2; i <= NF; i++) hex = hex $i }
        END { if (hex != "") print hex }'
} >"$out"

count=$(grep -vc '^#' "$out" || true)
if [[ $count -eq 0 ]]; then
    echo "$0: no packet captured; keepalived said:" >&2
    cat "$work/keepalived.log" >&2
    exit 1
fi
cat "$work/keepalived.log" >"$out.log"
echo "$0: wrote $count packets to $out"
