#!/usr/bin/env bash
# Capture real VRRPv3 advertisements sent by keepalived, as test vectors.
#
# Usage: capture-keepalived.sh OUTFILE MODE [SECONDS]
#   MODE: multicast            keepalived's default (224.0.0.18, pseudo-header checksum)
#         unicast              unicast_peer { 198.18.0.2 } (pseudo-header with the peer as dst)
#         unicast-old-checksum unicast, plus `old_unicast_checksum` (pseudo-header computed
#                              with 224.0.0.18 as dst although sent to the peer: the form
#                              keepalived < 1.3.6 sent, still selectable in 2.2.7)
#         multicast-two-vips   multicast, VIPs 198.18.99.1 and 198.18.99.2, advert_int 0.25
#   SECONDS: how long keepalived runs (default 8; it needs ~3 s before its first advert)
#
# Builds two network namespaces joined by a veth pair (198.18.0.1 and
# 198.18.0.2, from the benchmarking range 198.18.0.0/15), runs keepalived
# (VRRP only, vrid 51, priority 150, advert_int 1, VIP 198.18.99.1/24) in the
# first and tcpdump in the second, then writes every captured VRRP datagram
# (IP header included, link layer stripped) as one hex line to OUTFILE.
# Everything it made is torn down on exit, also on failure or Ctrl-C.
# Needs root, iproute2, keepalived and tcpdump.

set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 OUTFILE multicast|unicast|unicast-old-checksum|multicast-two-vips [SECONDS]" >&2
    exit 64
fi
out=$1
mode=$2
seconds=${3:-8}

case $mode in
    multicast | unicast | unicast-old-checksum | multicast-two-vips) ;;
    *)
        echo "$0: unknown mode '$mode'" >&2
        exit 64
        ;;
esac

ns_kad="rcbsdt-$$-kad"
ns_cap="rcbsdt-$$-cap"
if_kad="rk$$a"
if_cap="rk$$b"
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
ip link add "$if_kad" type veth peer name "$if_cap"
ip link set "$if_kad" netns "$ns_kad"
ip link set "$if_cap" netns "$ns_cap"
ip -n "$ns_kad" addr add 198.18.0.1/24 dev "$if_kad"
ip -n "$ns_cap" addr add 198.18.0.2/24 dev "$if_cap"
ip -n "$ns_kad" link set lo up
ip -n "$ns_cap" link set lo up
ip -n "$ns_kad" link set "$if_kad" up
ip -n "$ns_cap" link set "$if_cap" up

unicast=""
advert_int=1
vips=(198.18.99.1/24)
case $mode in
    multicast-two-vips)
        advert_int=0.25
        vips=(198.18.99.1/24 198.18.99.2/24)
        ;;
    unicast)
        unicast="unicast_src_ip 198.18.0.1
    unicast_peer {
        198.18.0.2
    }"
        ;;
    unicast-old-checksum)
        unicast="unicast_src_ip 198.18.0.1
    unicast_peer {
        198.18.0.2
    }
    old_unicast_checksum"
        ;;
esac

cat >"$work/keepalived.conf" <<EOF
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
    advert_int $advert_int
    $unicast
    virtual_ipaddress {
$(printf '        %s\n' "${vips[@]}")
    }
}
EOF

ip netns exec "$ns_cap" tcpdump -i "$if_cap" -n -U -w "$work/capture.pcap" ip proto 112 \
    2>"$work/tcpdump.log" &
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

# `tcpdump -x` prints each packet from the IP header on, as hex words;
# join them into one line per packet.
{
    echo "# keepalived $(keepalived --version 2>&1 | head -n1 | awk '{print $2}'), mode $mode:"
    echo "# vrid 51, priority 150, advert_int $advert_int, VIP(s) ${vips[*]}, src 198.18.0.1"
    tcpdump -r "$work/capture.pcap" -n -x 2>/dev/null | awk '
        /^[^ \t]/ { if (hex != "") print hex; hex = ""; next }
        /^[ \t]+0x/ { for (i = 2; i <= NF; i++) hex = hex $i }
        END { if (hex != "") print hex }'
} >"$out"

count=$(grep -vc '^#' "$out" || true)
if [[ $count -eq 0 ]]; then
    echo "$0: no VRRP packet captured; keepalived said:" >&2
    cat "$work/keepalived.log" >&2
    exit 1
fi
echo "$0: wrote $count packets to $out"
