#!/usr/bin/env bash
# Mobility scenarios on real kernel networking: network namespaces from scripts/testbed.sh, real
# `roam server` / `roam connect` processes, and a bidirectional stream checked byte by byte and by
# SHA-256 at both ends (tests/tools/testpeer.cpp).
#
#   scenario.sh NAME BUILD_DIR       exit 0 pass, 1 fail, 77 skipped (reason printed)
#
# The stream is paced (so that it is still flowing while the network changes) and long enough to
# outlast every scenario's steps. Pauses between network operations are part of the scenario
# (an outage of 3 s is a 3 s pause); readiness is always awaited by polling for a condition.
set -u
NAME=$1
BUILD=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../scripts/testbed.sh"

if ! reason=$(tb_available); then
  echo "SKIPPED: $reason"
  exit 77
fi

ROAM=$BUILD/roam
PEER=$BUILD/tests/roam_testpeer
WORK=$(mktemp -d /tmp/roam-netns-XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  tb_destroy
  if [ -n "${ROAM_NETNS_KEEP:-}" ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
tb_create "rn$$-" || { echo "FAIL: cannot build the test bed"; exit 1; }
trap cleanup EXIT

HB=300ms
WAIT=10m
SRV_LISTEN=0.0.0.0:7000      # the IPv6 scenarios listen on [::]:7000 (both families)
SRV_TARGET=$TB_SERVER:7000   # ... and connect to a name with an address of each family
BYTES=${BYTES:-12000000}
RATE=${RATE:-3000000}

fail() {
  echo "FAIL: $*"
  echo "--- client log";  grep -v " debug: " "$WORK/cli.log" 2>/dev/null | tail -40
  echo "--- server log";  grep -v " debug: " "$WORK/srv.log" 2>/dev/null | tail -40
  echo "--- peers"; cat "$WORK/peer_c.log" "$WORK/peer_s.log" 2>/dev/null
  exit 1
}

# wait_for CONDITION-COMMAND TIMEOUT-SECONDS WHAT
wait_for() {
  local deadline=$((SECONDS + $2))
  until eval "$1"; do
    [ $SECONDS -lt $deadline ] || fail "timed out waiting for $3"
    sleep 0.05
  done
}

progress() { awk '{print $1}' "$WORK/prog" 2>/dev/null || echo 0; }
# A handover by CMD..., then waits until the client has completed one more migration.
handover() {
  local m; m=$(migrations)
  "$@"
  wait_for "[ \$(migrations) -gt $m ]" 20 "the migration after '$*'"
}
# Waits until the client side has received at least N more bytes than now (or everything).
flowing() {
  local want=$(( $(progress) + ${1:-200000} ))
  [ "$want" -le "$BYTES" ] || want=$BYTES
  wait_for "[ \$(progress) -ge $want ]" 20 "data to flow (want $want bytes)"
}

start_stream() {  # [extra flags for roam connect]
  tb_srv "$PEER" serve --listen 127.0.0.1:9000 --send "$BYTES" --expect "$BYTES" --rate "$RATE" \
    --seed 11 2>"$WORK/peer_s.log" &
  PIDS+=($!); PEER_S=$!
  tb_srv "$ROAM" --log-level debug server --listen $SRV_LISTEN --forward 127.0.0.1:9000 \
    --heartbeat $HB --wait $WAIT 2>"$WORK/srv.log" &
  PIDS+=($!); SRV=$!
  tb_mob "$ROAM" --log-level debug connect $SRV_TARGET --local 127.0.0.1:8000 \
    --heartbeat $HB --wait $WAIT "$@" 2>"$WORK/cli.log" &
  PIDS+=($!); CLI=$!
  wait_for "grep -qs 'listening on' '$WORK/srv.log' && grep -qs 'listening on' '$WORK/cli.log' && grep -qs 'listening on' '$WORK/peer_s.log'" 10 "daemons"
  tb_mob "$PEER" connect --to 127.0.0.1:8000 --send "$BYTES" --expect "$BYTES" --rate "$RATE" \
    --seed 11 --progress "$WORK/prog" 2>"$WORK/peer_c.log" &
  PIDS+=($!); PEER_C=$!
  flowing 100000
}

# Both ends exact (testpeer checks every byte and prints both SHA-256s), session ended cleanly.
finish_stream() {
  local t=${1:-60}
  local deadline=$((SECONDS + t))
  while kill -0 "$PEER_C" 2>/dev/null || kill -0 "$PEER_S" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "stream did not finish within ${t}s"
    sleep 0.1
  done
  wait "$PEER_C"; local rc_c=$?
  wait "$PEER_S"; local rc_s=$?
  [ $rc_c -eq 0 ] || fail "client end of the stream: $(tail -2 "$WORK/peer_c.log")"
  [ $rc_s -eq 0 ] || fail "server end of the stream: $(tail -2 "$WORK/peer_s.log")"
  local sha_c sha_s
  sha_c=$(grep -o 'received [0-9/]* sha256=[0-9a-f]*' "$WORK/peer_c.log" | sed 's/.*=//')
  sha_s=$(grep -o 'sent [0-9]* sha256=[0-9a-f]*' "$WORK/peer_s.log" | sed 's/.*=//')
  [ -n "$sha_c" ] && [ "$sha_c" = "$sha_s" ] || fail "SHA-256 server→client differs"
  sha_c=$(grep -o 'sent [0-9]* sha256=[0-9a-f]*' "$WORK/peer_c.log" | sed 's/.*=//')
  sha_s=$(grep -o 'received [0-9/]* sha256=[0-9a-f]*' "$WORK/peer_s.log" | sed 's/.*=//')
  [ -n "$sha_c" ] && [ "$sha_c" = "$sha_s" ] || fail "SHA-256 client→server differs"
  wait_for "grep -q 'session ended cleanly' '$WORK/cli.log'" 5 "the client to log a clean end"
  wait_for "grep -q 'session ended cleanly' '$WORK/srv.log'" 5 "the server to log a clean end"
}

migrations() { grep -c "\] migrated to" "$WORK/cli.log"; }
# The IPv6 scenarios: the server listens on [::]:7000 and the client connects to a name that
# resolves (inside the mobile host's namespace only) to the server's IPv4 and IPv6 addresses.
dual_stack_server() {
  tb_hosts mob server.roam.test $TB_SERVER $TB_SERVER6
  SRV_LISTEN="[::]:7000"
  SRV_TARGET=server.roam.test:7000
}
# The last migration went to a path from this local address.
last_migration_from() {
  [ "$(grep "\] migrated to" "$WORK/cli.log" | tail -1 | grep -cF "migrated to $1:")" -eq 1 ] ||
    fail "last migration not from $1: $(grep "\] migrated to" "$WORK/cli.log" | tail -1)"
}
expect_migrations() {  # at least N
  local n; n=$(migrations)
  [ "$n" -ge "$1" ] || fail "expected at least $1 migrations, saw $n"
}

case "$NAME" in
  wifi_to_cell_bbm)
    start_stream
    tb_wifi_down; sleep 0.3; tb_cell_up
    flowing; finish_stream; expect_migrations 1 ;;
  cell_to_wifi_bbm)
    tb_wifi_down; tb_cell_up
    start_stream
    tb_cell_down; sleep 0.3; tb_wifi_up
    flowing; finish_stream; expect_migrations 1 ;;
  wifi_to_cell_mbb)
    start_stream
    tb_cell_up; flowing; tb_wifi_down
    flowing; finish_stream; expect_migrations 1
    grep -q "network changed" "$WORK/cli.log" || fail "no rtnetlink-driven migration" ;;
  cell_to_wifi_mbb)
    tb_wifi_down; tb_cell_up
    start_stream
    tb_wifi_up   # Wi-Fi is preferred (lower metric): moving back happens while cellular still works
    flowing; tb_cell_down
    flowing; finish_stream; expect_migrations 1
    grep -q "now leaves via $TB_WIFI_NET.2" "$WORK/cli.log" || fail "did not move back to Wi-Fi" ;;
  dhcp_order)
    start_stream
    tb_wifi_down; sleep 0.3
    ip -n "$(tb_ns mob)" addr replace $TB_CELL_NET.2/24 dev cell noprefixroute
    sleep 0.2
    ip -n "$(tb_ns mob)" route replace $TB_CELL_NET.0/24 dev cell src $TB_CELL_NET.2
    ip -n "$(tb_ns mob)" route replace default via $TB_CELL_NET.1 dev cell metric 200
    flowing; finish_stream; expect_migrations 1 ;;
  renumber)
    start_stream
    tb_renumber_wifi $TB_WIFI_NET.77
    flowing; finish_stream; expect_migrations 1
    grep -q "migrated to $TB_WIFI_NET.77:" "$WORK/cli.log" || fail "not migrated to the new address" ;;
  outage_short)
    start_stream
    tb_outage_start; sleep 3; tb_outage_stop
    flowing; finish_stream; expect_migrations 1 ;;
  outage_long)
    WAIT=4s
    start_stream
    tb_outage_start
    t0=$SECONDS
    # Both applications must see the end (an abort: never a silent truncation) within wait + 2 s.
    wait_for "! kill -0 $PEER_C 2>/dev/null && ! kill -0 $PEER_S 2>/dev/null" 12 "both ends to see the session end"
    wait "$PEER_C" && fail "client end reported success after the wait expired"
    wait "$PEER_S" && fail "server end reported success after the wait expired"
    grep -q "reset" "$WORK/peer_c.log" || fail "client application did not see a reset: $(tail -1 "$WORK/peer_c.log")"
    grep -q "reset" "$WORK/peer_s.log" || fail "server application did not see a reset: $(tail -1 "$WORK/peer_s.log")"
    [ $((SECONDS - t0)) -le 7 ] || fail "ends took $((SECONDS - t0))s (wait 4s + 2s)"
    grep -q "migrate wait of 4s expired" "$WORK/cli.log" || fail "client did not end by wait expiry"
    grep -q "migrate wait of 4s expired" "$WORK/srv.log" || fail "server did not end by wait expiry"
    tb_outage_stop
    # No leaked sessions: neither daemon holds a roam path any more.
    wait_for "[ -z \"\$(tb_mob ss -Htn state established '( dport = :7000 )')\" ]" 5 "client paths to close"
    wait_for "[ -z \"\$(tb_srv ss -Htn state established '( sport = :7000 )')\" ]" 5 "server paths to close" ;;
  nat_rebind)
    tb_nat_on
    start_stream
    tb_nat_rebind
    flowing 500000; tb_nat_rebind
    flowing; finish_stream; expect_migrations 1 ;;
  rst_from_reassigned)
    start_stream
    tb_wifi_down
    tb_reassign_old_wifi $TB_WIFI_NET.2
    sleep 0.5   # the server keeps sending to the old address: the new holder answers RST
    tb_cell_up
    flowing; finish_stream; expect_migrations 1 ;;
  handovers_50)
    # 16 s of stream: 25 down/up cycles must fit in it even on a busy machine (~0.5 s each).
    BYTES=48000000 RATE=3000000
    tb_cell_up
    start_stream
    for i in $(seq 1 25); do
      tb_wifi_down; flowing 30000; tb_wifi_up; flowing 30000
    done
    finish_stream 90; expect_migrations 50 ;;
  prefer)
    # --prefer cell,wifi: cellular is used whenever it is up, though Wi-Fi has the better metric.
    tb_cell_up
    start_stream --prefer cell,wifi
    grep -q "session established ($TB_CELL_NET.2:" "$WORK/cli.log" || fail "did not start on the preferred interface"
    tb_cell_down; flowing
    grep -q "migrated to $TB_WIFI_NET.2:" "$WORK/cli.log" || fail "did not fall back to Wi-Fi"
    tb_cell_up; flowing
    [ "$(grep "migrated to" "$WORK/cli.log" | tail -1 | grep -c "$TB_CELL_NET.2:")" -eq 1 ] ||
      fail "did not move back to the preferred interface"
    finish_stream; expect_migrations 2 ;;
  pin)
    # --interface wifi: the session never leaves Wi-Fi, even while only cellular works.
    tb_cell_up
    start_stream --interface wifi
    tb_wifi_down; sleep 1  # the outage itself (1 s without Wi-Fi), not a wait for readiness
    tb_wifi_up; flowing
    finish_stream
    ! grep -q "migrated to $TB_CELL_NET" "$WORK/cli.log" || fail "a pinned session used cellular" ;;
  v4_to_v6)
    # Wi-Fi is IPv4 only, cellular IPv6 only: the session (named by its token, not by an address
    # family) moves from IPv4 to IPv6 and back, break-before-make both ways.
    dual_stack_server
    start_stream
    grep -q "session established ($TB_WIFI_NET.2:" "$WORK/cli.log" || fail "did not start on IPv4"
    tb_wifi_down; sleep 0.3; tb_cell6_up  # break-before-make: a 0.3 s gap without any network
    flowing; last_migration_from "[$TB_CELL6_NET::2]"
    tb_cell6_down; sleep 0.3; tb_wifi_up
    flowing; last_migration_from $TB_WIFI_NET.2
    finish_stream; expect_migrations 2
    grep -qF "[$TB_CELL6_NET::2]:" "$WORK/srv.log" || fail "the server never saw the IPv6 path" ;;
  v6_to_v4_mbb)
    # Starts on IPv6 (cellular); Wi-Fi (IPv4, preferred by --prefer) comes up and the session moves
    # to it while IPv6 still works; Wi-Fi goes, back to IPv6; Wi-Fi returns, IPv4 again.
    dual_stack_server
    tb_wifi_down; tb_cell6_up
    start_stream --prefer wifi,cell
    grep -q "session established (\[$TB_CELL6_NET::2\]:" "$WORK/cli.log" || fail "did not start on IPv6"
    tb_wifi_up
    flowing; last_migration_from $TB_WIFI_NET.2
    grep -q "now leaves via $TB_WIFI_NET.2 on wifi" "$WORK/cli.log" || fail "no make-before-break to IPv4"
    tb_wifi_down
    flowing; last_migration_from "[$TB_CELL6_NET::2]"
    tb_wifi_up
    flowing; last_migration_from $TB_WIFI_NET.2
    finish_stream; expect_migrations 3 ;;
  dual_stack_drop)
    # One dual-stack interface loses IPv6 (the session falls back to IPv4 on the same interface)
    # and gets it back (make-before-break to IPv6, the family RFC 6724 prefers).
    dual_stack_server
    tb_wifi6_up
    start_stream
    grep -q "session established (\[$TB_WIFI6_NET::2\]:" "$WORK/cli.log" || fail "did not start on IPv6"
    tb_wifi6_down
    flowing; last_migration_from $TB_WIFI_NET.2
    tb_wifi6_up
    flowing; last_migration_from "[$TB_WIFI6_NET::2]"
    grep -q "now leaves via $TB_WIFI6_NET::2" "$WORK/cli.log" || fail "no make-before-break back to IPv6"
    finish_stream; expect_migrations 2 ;;
  msocks_v6)
    # roam socks → roam proxy by a dual-stack name, to an IPv6-only web server (SOCKS5 ATYP 4),
    # while the mobile host moves between IPv4 (Wi-Fi, preferred) and IPv6 (cellular).
    for t in curl python3; do
      command -v $t >/dev/null || { echo "SKIPPED: needs $t"; exit 77; }
    done
    mkdir -p "$WORK/www"
    head -c 48000000 /dev/urandom > "$WORK/www/file"
    tb_hosts mob proxy.roam.test $TB_PROXY $TB_PROXY6
    tb_srv python3 -m http.server 8080 --bind $TB_SERVER6 --directory "$WORK/www" 2>"$WORK/http.log" &
    PIDS+=($!)
    tb_prx "$ROAM" --log-level debug proxy --listen "[::]:1080" --allow-client 198.18.0.0/15 \
      --allow-client 2001:2::/48 --allow-dest $TB_SRV6_NET::/64 --heartbeat $HB 2>"$WORK/srv.log" &
    PIDS+=($!)
    tb_mob "$ROAM" --log-level debug socks --proxy proxy.roam.test:1080 --listen 127.0.0.1:1080 \
      --prefer wifi,cell --heartbeat $HB 2>"$WORK/cli.log" &
    PIDS+=($!)
    tb_cell6_up
    wait_for "grep -qs 'listening on' '$WORK/srv.log' && grep -qs 'listening on' '$WORK/cli.log' && tb_srv ss -Hltn 'sport = :8080' | grep -q 8080" 10 "proxy, agent and web server"
    # --socks5 (not -hostname): curl sends the IPv6 literal as SOCKS5 address type 4. 2 MB/s of
    # 48 MB: 24 s, so the 4 handovers fall inside the download even after curl's rate limit
    # catches up on a slow start.
    tb_mob curl -sS --fail --socks5 127.0.0.1:1080 --limit-rate 2M \
      -o "$WORK/out" "http://[$TB_SERVER6]:8080/file" 2>"$WORK/curl.log" &
    CURL=$!; PIDS+=($CURL)
    size() { stat -c %s "$WORK/out" 2>/dev/null || echo 0; }
    WIFI_ON=1
    toggle_wifi() {  # Wi-Fi away (IPv6 cellular carries on) or back (preferred again)
      if [ $WIFI_ON -eq 1 ]; then tb_wifi_down; WIFI_ON=0; else tb_wifi_up; WIFI_ON=1; fi
    }
    # Each handover once the download has moved on since the last one completed. curl's rate
    # limit reads in bursts (it runs ahead, then pauses), so progress is the only sound pacing.
    for i in 1 2 3 4; do
      want=$(( $(size) + 500000 ))
      wait_for "[ \$(size) -ge $want ]" 30 "download progress before handover $i"
      handover toggle_wifi
    done
    wait_for "! kill -0 $CURL 2>/dev/null" 60 "curl to finish"
    wait "$CURL" || fail "curl failed: $(cat "$WORK/curl.log")"
    [ "$(sha256sum < "$WORK/out")" = "$(sha256sum < "$WORK/www/file")" ] || fail "download differs"
    [ "$(grep -c 'GET /file' "$WORK/http.log")" -eq 1 ] || fail "the web server saw more than one request"
    grep -q "migrated to \[$TB_CELL6_NET::2\]:" "$WORK/cli.log" || fail "never moved to the IPv6 path"
    grep -q "migrated to $TB_WIFI_NET.2:" "$WORK/cli.log" || fail "never moved back to the IPv4 path"
    n=$(grep -c "\] migrated to" "$WORK/cli.log")
    [ "$n" -ge 4 ] || fail "expected at least 4 migrations, saw $n"
    echo "PASS: $NAME ($n migrations)"; exit 0 ;;
  msocks_handovers)
    # Unmodified clients (curl, ssh via nc -X 5) through roam socks → roam proxy while the mobile
    # host hands over 5 times during each; the server side never sees a reset.
    for t in curl python3 nc; do
      command -v $t >/dev/null || { echo "SKIPPED: needs $t"; exit 77; }
    done
    mkdir -p "$WORK/www"
    head -c 48000000 /dev/urandom > "$WORK/www/file"
    tb_srv python3 -m http.server 8080 --bind $TB_SERVER --directory "$WORK/www" 2>"$WORK/http.log" &
    PIDS+=($!)
    tb_prx "$ROAM" --log-level debug proxy --listen 0.0.0.0:1080 --allow-dest $TB_SRV_NET.0/24 \
      --heartbeat $HB 2>"$WORK/srv.log" &
    PIDS+=($!)
    tb_mob "$ROAM" --log-level debug socks --proxy $TB_PROXY:1080 --listen 127.0.0.1:1080 \
      --heartbeat $HB 2>"$WORK/cli.log" &
    PIDS+=($!)
    tb_cell_up
    wait_for "grep -qs 'listening on' '$WORK/srv.log' && grep -qs 'listening on' '$WORK/cli.log' && tb_srv ss -Hltn 'sport = :8080' | grep -q 8080" 10 "proxy, agent and web server"
    # 2 MB/s: 24 s of download, so the 5 handovers (a few hundred ms to ~2.5 s each on a busy
    # machine) all happen while it runs.
    tb_mob curl -sS --fail --socks5-hostname 127.0.0.1:1080 --limit-rate 2M \
      -o "$WORK/out" http://$TB_SERVER:8080/file 2>"$WORK/curl.log" &
    CURL=$!; PIDS+=($CURL)
    size() { stat -c %s "$WORK/out" 2>/dev/null || echo 0; }
    WIFI_ON=1
    toggle_wifi() {  # a handover: Wi-Fi away (cellular carries on) or back (preferred again)
      if [ $WIFI_ON -eq 1 ]; then tb_wifi_down; WIFI_ON=0; else tb_wifi_up; WIFI_ON=1; fi
    }
    # Each handover once the download has moved on since the last one completed. curl's rate
    # limit reads in bursts (it runs ahead, then pauses for seconds), so waiting for 2 MB each
    # time let the download end after 4 handovers on a slow run; progress is the sound pacing.
    for i in 1 2 3 4 5; do
      want=$(( $(size) + 500000 ))
      wait_for "[ \$(size) -ge $want ]" 30 "download progress before handover $i"
      handover toggle_wifi
    done
    wait_for "! kill -0 $CURL 2>/dev/null" 60 "curl to finish"
    wait "$CURL" || fail "curl failed: $(cat "$WORK/curl.log")"
    [ "$(sha256sum < "$WORK/out")" = "$(sha256sum < "$WORK/www/file")" ] || fail "download differs"
    [ "$(grep -c 'GET /file' "$WORK/http.log")" -eq 1 ] || fail "the web server saw more than one request"
    n=$(grep -c "\] migrated to" "$WORK/cli.log")
    [ "$n" -ge 5 ] || fail "expected at least 5 migrations, saw $n"
    # ssh through the same agent with `nc -X 5`, 5 handovers during an interactive session.
    SSHD=$(command -v sshd || echo /usr/sbin/sshd)
    if [ -x "$SSHD" ] && command -v ssh >/dev/null; then
      mkdir -p /run/sshd
      ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$WORK/id"
      cp "$WORK/id.pub" "$WORK/authorized_keys"
      printf '%s\n' "Port 2222" "ListenAddress $TB_SERVER" "HostKey $WORK/host_key" \
        "AuthorizedKeysFile $WORK/authorized_keys" "PidFile $WORK/sshd.pid" "StrictModes no" \
        "UsePAM no" "PermitRootLogin yes" "PasswordAuthentication no" > "$WORK/sshd_config"
      tb_srv "$SSHD" -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
      PIDS+=($!)
      wait_for "grep -qs 'Server listening' '$WORK/sshd.log'" 10 "sshd"
      (for i in $(seq 1 120); do echo "line $i"; sleep 0.05; done) |
        tb_mob ssh -F /dev/null -i "$WORK/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
          -o LogLevel=ERROR -o "ProxyCommand=nc -X 5 -x 127.0.0.1:1080 %h %p" -p 2222 \
          root@$TB_SERVER cat >"$WORK/ssh.out" 2>"$WORK/ssh.err" &
      SSH=$!; PIDS+=($SSH)
      for i in 1 2 3 4 5; do
        want=$(( $(wc -l < "$WORK/ssh.out") + 12 ))
        wait_for "[ \$(wc -l < '$WORK/ssh.out') -ge $want ]" 20 "ssh output before handover $i"
        handover toggle_wifi
      done
      wait_for "! kill -0 $SSH 2>/dev/null" 30 "ssh to finish"
      wait "$SSH" || fail "ssh exited with an error: $(cat "$WORK/ssh.err")"
      diff <(seq 1 120 | sed 's/^/line /') "$WORK/ssh.out" >/dev/null || fail "ssh output differs"
    else
      echo "note: sshd/ssh missing, the ssh half of this scenario was skipped"
    fi
    grep -q "reset" "$WORK/http.log" && fail "the web server saw a reset"
    n=$(grep -c "\] migrated to" "$WORK/cli.log")
    [ "$n" -ge 10 ] || fail "expected at least 10 migrations (5 per client), saw $n"
    echo "PASS: $NAME ($n migrations)"; exit 0 ;;
  ssh_handover)
    SSHD=$(command -v sshd || echo /usr/sbin/sshd)
    if [ ! -x "$SSHD" ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
      echo "SKIPPED: needs openssh-server and openssh-client"; exit 77
    fi
    mkdir -p /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$WORK/id"
    cp "$WORK/id.pub" "$WORK/authorized_keys"
    cat > "$WORK/sshd_config" <<CFG
Port 2222
ListenAddress 127.0.0.1
HostKey $WORK/host_key
AuthorizedKeysFile $WORK/authorized_keys
PidFile $WORK/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
CFG
    tb_srv "$SSHD" -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
    PIDS+=($!)
    tb_srv "$ROAM" --log-level debug server --listen 0.0.0.0:7000 --forward 127.0.0.1:2222 \
      --heartbeat $HB 2>"$WORK/srv.log" &
    PIDS+=($!)
    wait_for "grep -qs 'listening on' '$WORK/srv.log' && grep -qs 'Server listening' '$WORK/sshd.log'" 10 "sshd and roam server"
    tb_cell_up
    # An interactive session: a line every 50 ms goes in, the remote `cat` echoes it back.
    (for i in $(seq 1 80); do echo "line $i $(printf '%0200d' $i)"; sleep 0.05; done) |
      tb_mob ssh -F /dev/null -i "$WORK/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -o "ProxyCommand=$ROAM --log-level debug connect %h 7000 --heartbeat $HB" \
        root@$TB_SERVER cat >"$WORK/ssh.out" 2>"$WORK/cli.log" &
    SSH=$!; PIDS+=($SSH)
    wait_for "[ \$(wc -l < '$WORK/ssh.out') -ge 10 ]" 20 "ssh output"
    tb_wifi_down
    wait_for "[ \$(wc -l < '$WORK/ssh.out') -ge 30 ]" 20 "ssh output after the first handover"
    tb_wifi_up
    wait_for "[ \$(wc -l < '$WORK/ssh.out') -ge 50 ]" 20 "ssh output after the second handover"
    tb_cell_down
    wait_for "! kill -0 $SSH 2>/dev/null" 30 "ssh to finish"
    wait "$SSH" || fail "ssh exited with $?"
    diff <(for i in $(seq 1 80); do echo "line $i $(printf '%0200d' $i)"; done) "$WORK/ssh.out" >/dev/null ||
      fail "ssh output differs from its input"
    expect_migrations 2 ;;
  *)
    echo "unknown scenario $NAME"; exit 2 ;;
esac
echo "PASS: $NAME ($(migrations) migrations)"
exit 0
