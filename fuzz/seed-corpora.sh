#!/bin/sh
# Writes the seed corpora of the fuzz targets from files the project already
# keeps, so no corpus is committed: the keepalived captures (tests/vectors),
# the example configurations (contrib/examples) and the control requests of
# docs/status.md. Run from anywhere; existing corpus files are kept.
set -eu

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$fuzz_dir")
corpus="$fuzz_dir/corpus"
mkdir -p "$corpus/advert" "$corpus/advert6" "$corpus/config" "$corpus/control" "$corpus/heartbeat"

# advert: each captured IPv4 datagram as raw bytes, and its VRRP payload
# alone (IHL 5 in every capture, so the payload starts at byte 20).
for vectors in "$repo"/tests/vectors/*.hex; do
    name=$(basename "$vectors" .hex)
    case $name in *ipv6*) continue ;; esac
    line_number=0
    grep -v '^#' "$vectors" | grep -v '^$' | while read -r hex; do
        line_number=$((line_number + 1))
        printf '%s' "$hex" | xxd -r -p >"$corpus/advert/$name-$line_number"
        printf '%s' "$hex" | cut -c41- | xxd -r -p >"$corpus/advert/$name-$line_number-payload"
    done
done

# advert6: each captured IPv6 datagram (VRRP adverts and Neighbor
# Advertisements), whole and its payload alone (the fixed 40-byte header,
# so the payload starts at byte 40: hex character 81).
for vectors in "$repo"/tests/vectors/*ipv6*.hex; do
    name=$(basename "$vectors" .hex)
    line_number=0
    grep -v '^#' "$vectors" | grep -v '^$' | while read -r hex; do
        line_number=$((line_number + 1))
        printf '%s' "$hex" | xxd -r -p >"$corpus/advert6/$name-$line_number"
        printf '%s' "$hex" | cut -c81- | xxd -r -p >"$corpus/advert6/$name-$line_number-payload"
    done
done

# config: every example, the cluster ones included.
for example in "$repo"/contrib/examples/*.toml "$repo"/contrib/examples/cluster/*.toml; do
    [ -f "$example" ] || continue
    relative=${example#"$repo"/contrib/examples/}
    cp "$example" "$corpus/config/$(printf '%s' "$relative" | tr / -)"
done

# control: every request the CLI sends, and one reply of each kind.
for command in status promote demote resume; do
    printf '{"command":"%s"}' "$command" >"$corpus/control/request-$command"
done
printf '{"command":"move","environment":"web1","node":"node3"}' >"$corpus/control/request-move"
printf '{"ok":false,"error":"malformed request"}' >"$corpus/control/response-error"
printf '{"ok":true,"changed":"priority override cleared"}' >"$corpus/control/response-changed"
printf '%s' '{"ok":true,"status":{"node":"node1","version":"0.1.0","pid":4242,"state":"master","interface":"em0","vrid":51,"configured_priority":150,"effective_priority":150,"follower_only":false,"master":"192.168.10.201","vips_held":["192.168.10.200/24"],"override":"none","fault":null,"runbook":null,"advert_interval_ms":1000,"master_advert_interval_ms":1000,"uptime_s":7985,"counters":{"adverts_sent":7985,"adverts_received":12,"transitions":2,"drops":{"bad_ttl":2,"wrong_vrid":1},"checksum_forms":{"pseudo-header":12}}}}' >"$corpus/control/response-status"

# heartbeat: the layout of src/wire/heartbeat.rs, unsigned (the target signs
# what it needs). A master with acks, claims, grants, a running jail and a
# handoff...
hex() { printf '%s' "$1" | tr -d ' ' | xxd -r -p; }
name() { printf '%02x' "${#1}"; printf '%s' "$1" | xxd -p | tr -d '\n'; }
u64() { printf '%016x' "$1"; }
{
    hex "$(printf '%s' RCHB | xxd -p) 01 00"
    hex "$(name node1) $(u64 1764000000) $(u64 42) 02 96 01 01 c6120001 $(u64 1311768467463790320)"
    hex "0002 $(name node2) $(u64 1764000001) $(u64 40) $(name node3) $(u64 1764000002) $(u64 41)"
    hex "0002 00 01 $(name web1)"
    hex "0002 00 $(name node1) 01 $(name web1) $(name node1)"
    hex "0001 $(name web1)"
    hex "0001 $(name db1) $(name node2)"
} >"$corpus/heartbeat/master-node1"
# ...and a node that just started: no quorum, follows nobody, empty lists.
{
    hex "$(printf '%s' RCHB | xxd -p) 01 00"
    hex "$(name node3) $(u64 1) $(u64 0) 00 00 00 00 $(u64 0) 0000 0000 0000 0000 0000"
} >"$corpus/heartbeat/starting-node3"
