#!/usr/bin/env bash
# roam's network-namespace test bed, shared by the netns tests, `roam demo` and the benchmarks.
# Source it, then call the tb_* functions. Only addresses from 198.18.0.0/15 and 2001:2::/48 (the
# benchmarking ranges) are used; every namespace carries the prefix given to tb_create, and
# tb_destroy (also installed as an EXIT trap by tb_create) removes all of them.
#
#   mob (mobile host)  wifi 198.18.1.2/24 ──┐             ┌── srv 198.18.3.2/24 (server host)
#                      cell 198.18.2.2/24 ──┤ rtr (router)├── prx 198.18.4.2/24 (proxy host)
#   oth (another host on the Wi-Fi segment, for "old address reassigned")
#
# The router bridges the Wi-Fi segment (br-wifi 198.18.1.1) so that another host can take over the
# mobile host's old address, routes between all subnets, and can masquerade (NAT) the mobile
# host's traffic. The mobile host has one default route per interface: Wi-Fi metric 100, cellular
# metric 200, so Wi-Fi is preferred while it is up.
#
# Operations (all idempotent where it makes sense):
#   tb_create PREFIX            build everything (interfaces up: wifi only)
#   tb_destroy                  remove every namespace with the prefix
#   tb_mob CMD... / tb_srv / tb_rtr / tb_prx / tb_oth    run a command in that namespace
#   tb_wifi_up [ADDR] / tb_wifi_down        address + default route on / off (link stays up;
#                                           _down removes IPv6 too)
#   tb_cell_up [ADDR] / tb_cell_down
#   tb_wifi_up_dhcp_order [ADDR]            address first, route a moment later (as DHCP does)
#   tb_renumber_wifi NEWADDR                DHCP-style renumbering of the Wi-Fi interface
#   tb_outage_start / tb_outage_stop        nftables drop of everything through the router
#   tb_nat_on                               masquerade mobile→servers with random ports
#   tb_nat_rebind                           forget the NAT mappings (next packets get new ports)
#   tb_reassign_old_wifi ADDR               give the mobile host's old Wi-Fi address to `oth`
#   tb_rate IFACE RATE                      tbf rate limit on a router interface (e.g. 5gbit)
#
# IPv6 (2001:2::/48, the benchmarking range): the router, server and proxy hosts are dual-stack
# from the start (2001:2:0:N::1 and ::2 beside 198.18.N.x; the router forwards both families); the
# mobile host gets IPv6 only when asked, so every IPv4 scenario stays as it was:
#   tb_wifi6_up [ADDR] / tb_wifi6_down      IPv6 address + default route on Wi-Fi (metric 100)
#   tb_cell6_up [ADDR] / tb_cell6_down      the same on cellular (metric 200)
#   tb_hosts NS NAME ADDR...                NAME resolves to ADDR... inside namespace NS (an
#                                           /etc/netns/<ns>/hosts that `ip netns exec` mounts over
#                                           /etc/hosts for commands started afterwards; removed
#                                           by tb_destroy)
set -u

TB_WIFI_NET=198.18.1
TB_CELL_NET=198.18.2
TB_SRV_NET=198.18.3
TB_PRX_NET=198.18.4
TB_SERVER=198.18.3.2
TB_PROXY=198.18.4.2
TB_WIFI6_NET=2001:2:0:1
TB_CELL6_NET=2001:2:0:2
TB_SRV6_NET=2001:2:0:3
TB_PRX6_NET=2001:2:0:4
TB_SERVER6=$TB_SRV6_NET::2
TB_PROXY6=$TB_PRX6_NET::2
TB_PREFIX=""

tb_ns() { echo "${TB_PREFIX}$1"; }
tb_mob() { ip netns exec "$(tb_ns mob)" "$@"; }
tb_rtr() { ip netns exec "$(tb_ns rtr)" "$@"; }
tb_srv() { ip netns exec "$(tb_ns srv)" "$@"; }
tb_prx() { ip netns exec "$(tb_ns prx)" "$@"; }
tb_oth() { ip netns exec "$(tb_ns oth)" "$@"; }

# Prints a reason and returns 1 when the test bed cannot be built here.
tb_available() {
  if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespaces)"; return 1; fi
  if ! command -v ip >/dev/null; then echo "needs iproute2"; return 1; fi
  if ! command -v nft >/dev/null; then echo "needs nftables"; return 1; fi
  local probe="roamprobe$$"
  if ! ip netns add "$probe" 2>/dev/null; then echo "cannot create network namespaces"; return 1; fi
  ip netns del "$probe"
  return 0
}

tb_destroy() {
  [ -n "$TB_PREFIX" ] || return 0
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${TB_PREFIX}"); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  for ns in mob rtr srv prx oth; do
    rm -f "/etc/netns/$(tb_ns $ns)/hosts"
    rmdir "/etc/netns/$(tb_ns $ns)" 2>/dev/null
  done
  return 0
}

tb_link() {  # ns1 if1 ns2 if2
  ip link add "$2" netns "$(tb_ns "$1")" type veth peer name "$4" netns "$(tb_ns "$3")"
}

tb_create() {
  TB_PREFIX=$1
  tb_destroy
  trap tb_destroy EXIT
  local n
  for n in mob rtr srv prx oth; do
    ip netns add "$(tb_ns $n)" || return 1
    ip -n "$(tb_ns $n)" link set lo up
    # No duplicate address detection on the test bed's links: a link-local address stays
    # "tentative" for 1-2 s after a link comes up, and IPv6 neighbour discovery through it
    # waits; the first IPv6 handover then measured the kernel's DAD timer, not roam.
    ip netns exec "$(tb_ns $n)" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
      net.ipv6.conf.default.accept_dad=0
  done
  tb_link mob wifi rtr wifi-m
  tb_link mob cell rtr cell-m
  tb_link srv eth0 rtr srv
  tb_link prx eth0 rtr prx
  tb_link oth eth0 rtr wifi-o
  local r; r=$(tb_ns rtr)
  ip -n "$r" link add br-wifi type bridge
  ip -n "$r" link set wifi-m master br-wifi
  ip -n "$r" link set wifi-o master br-wifi
  ip -n "$r" addr add $TB_WIFI_NET.1/24 dev br-wifi
  ip -n "$r" addr add $TB_CELL_NET.1/24 dev cell-m
  ip -n "$r" addr add $TB_SRV_NET.1/24 dev srv
  ip -n "$r" addr add $TB_PRX_NET.1/24 dev prx
  for i in br-wifi wifi-m wifi-o cell-m srv prx; do ip -n "$r" link set "$i" up; done
  tb_rtr sysctl -qw net.ipv4.ip_forward=1
  # IPv6 beside IPv4 (nodad: usable at once, no duplicate address detection delay).
  ip -n "$r" addr add $TB_WIFI6_NET::1/64 dev br-wifi nodad
  ip -n "$r" addr add $TB_CELL6_NET::1/64 dev cell-m nodad
  ip -n "$r" addr add $TB_SRV6_NET::1/64 dev srv nodad
  ip -n "$r" addr add $TB_PRX6_NET::1/64 dev prx nodad
  tb_rtr sysctl -qw net.ipv6.conf.all.forwarding=1
  ip -n "$(tb_ns srv)" addr add $TB_SERVER6/64 dev eth0 nodad
  ip -n "$(tb_ns prx)" addr add $TB_PROXY6/64 dev eth0 nodad
  ip -n "$(tb_ns srv)" addr add $TB_SERVER/24 dev eth0
  ip -n "$(tb_ns srv)" link set eth0 up
  ip -n "$(tb_ns srv)" route add default via $TB_SRV_NET.1
  ip -n "$(tb_ns prx)" addr add $TB_PROXY/24 dev eth0
  ip -n "$(tb_ns prx)" link set eth0 up
  ip -n "$(tb_ns prx)" route add default via $TB_PRX_NET.1
  ip -n "$(tb_ns srv)" -6 route add default via $TB_SRV6_NET::1
  ip -n "$(tb_ns prx)" -6 route add default via $TB_PRX6_NET::1
  ip -n "$(tb_ns oth)" link set eth0 up
  ip -n "$(tb_ns mob)" link set wifi up
  ip -n "$(tb_ns mob)" link set cell up
  # Fail fast on dead routes instead of retransmitting into the void for minutes.
  tb_mob sysctl -qw net.ipv4.tcp_retries2=5
  tb_wifi_up
}

tb_wifi_up() {
  local a=${1:-$TB_WIFI_NET.2}
  ip -n "$(tb_ns mob)" addr replace "$a/24" dev wifi
  ip -n "$(tb_ns mob)" route replace default via $TB_WIFI_NET.1 dev wifi metric 100
}
tb_wifi_up_dhcp_order() {
  local a=${1:-$TB_WIFI_NET.2}
  ip -n "$(tb_ns mob)" addr replace "$a/24" dev wifi noprefixroute
  sleep 0.2  # the DHCP client's gap between address and routes, part of the scenario
  ip -n "$(tb_ns mob)" route replace $TB_WIFI_NET.0/24 dev wifi src "$a"
  ip -n "$(tb_ns mob)" route replace default via $TB_WIFI_NET.1 dev wifi metric 100
}
tb_wifi_down() {  # the whole network goes: both families
  ip -n "$(tb_ns mob)" route del default dev wifi 2>/dev/null
  ip -n "$(tb_ns mob)" -6 route del default dev wifi 2>/dev/null
  ip -n "$(tb_ns mob)" addr flush dev wifi
}
tb_cell_up() {
  local a=${1:-$TB_CELL_NET.2}
  ip -n "$(tb_ns mob)" addr replace "$a/24" dev cell
  ip -n "$(tb_ns mob)" route replace default via $TB_CELL_NET.1 dev cell metric 200
}
tb_cell_down() {
  ip -n "$(tb_ns mob)" route del default dev cell 2>/dev/null
  ip -n "$(tb_ns mob)" -6 route del default dev cell 2>/dev/null
  ip -n "$(tb_ns mob)" addr flush dev cell
}
tb_wifi6_up() {
  local a=${1:-$TB_WIFI6_NET::2}
  ip -n "$(tb_ns mob)" addr replace "$a/64" dev wifi nodad
  ip -n "$(tb_ns mob)" -6 route replace default via $TB_WIFI6_NET::1 dev wifi metric 100
}
tb_wifi6_down() {
  ip -n "$(tb_ns mob)" -6 route del default dev wifi 2>/dev/null
  ip -n "$(tb_ns mob)" -6 addr flush dev wifi scope global
}
tb_cell6_up() {
  local a=${1:-$TB_CELL6_NET::2}
  ip -n "$(tb_ns mob)" addr replace "$a/64" dev cell nodad
  ip -n "$(tb_ns mob)" -6 route replace default via $TB_CELL6_NET::1 dev cell metric 200
}
tb_cell6_down() {
  ip -n "$(tb_ns mob)" -6 route del default dev cell 2>/dev/null
  ip -n "$(tb_ns mob)" -6 addr flush dev cell scope global
}
tb_hosts() {  # NS NAME ADDR...
  local dir; dir="/etc/netns/$(tb_ns "$1")"
  local name=$2; shift 2
  mkdir -p "$dir"
  { echo "127.0.0.1 localhost"; echo "::1 localhost"; local a; for a in "$@"; do echo "$a $name"; done; } > "$dir/hosts"
}
tb_renumber_wifi() {
  tb_wifi_down
  tb_wifi_up "$1"
}

tb_outage_start() {
  tb_rtr nft add table inet roam_outage 2>/dev/null
  tb_rtr nft "add chain inet roam_outage block { type filter hook forward priority -10; policy drop; }"
}
tb_outage_stop() {
  tb_rtr nft delete table inet roam_outage 2>/dev/null
}

tb_nat_on() {
  tb_rtr nft add table ip roam_nat
  tb_rtr nft "add chain ip roam_nat post { type nat hook postrouting priority 100; }"
  tb_rtr nft add rule ip roam_nat post ip saddr { $TB_WIFI_NET.0/24, $TB_CELL_NET.0/24 } oifname { "srv", "prx" } masquerade random
}
tb_nat_rebind() {
  tb_rtr conntrack -F >/dev/null 2>&1
}

tb_reassign_old_wifi() {
  local a=$1
  ip -n "$(tb_ns oth)" addr add "$a/24" dev eth0
  ip -n "$(tb_ns oth)" route replace default via $TB_WIFI_NET.1
  # Announce the move, as a new DHCP lease holder would (the router's ARP entry is replaced).
  ip -n "$(tb_ns rtr)" neigh flush dev br-wifi
}

tb_rate() {
  tb_rtr tc qdisc replace dev "$1" root tbf rate "$2" burst 1mbit latency 50ms
}
