#!/usr/bin/env bash
# Installs the build into a temporary prefix (cmake --install BUILD --prefix TMP) and checks what
# a person installing roam relies on: the installed binary runs (--version, --help, a
# subcommand's --help, `roam server` printing "listening on"), the man pages render without a
# groff warning, the systemd units are in place and pass `systemd-analyze verify`, the example
# configurations are installed (the server's starts the installed binary), and so are the docs.
# usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/roam-install-test.XXXXXX)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/usr" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
roam=$tmp/usr/bin/roam
[ -x "$roam" ] || fail "no executable $roam"

# --version: release, git revision, protocol version.
version=$("$roam" --version)
echo "roam --version: $version"
[[ $version =~ ^roam\ [0-9]+\.[0-9]+\.[0-9]+\ \(git\ [^\)]+\),\ protocol\ version\ [0-9]+$ ]] ||
  fail "unexpected --version output: $version"

# --help teaches: the subcommands, and each subcommand's help names --config.
"$roam" --help >"$tmp/help" || fail "roam --help"
for sub in server connect proxy socks demo; do
  grep -q "^  $sub" "$tmp/help" || fail "roam --help does not list $sub"
  "$roam" "$sub" --help >"$tmp/help-$sub" || fail "roam $sub --help"
  grep -q -- "--config" "$tmp/help-$sub" || fail "roam $sub --help does not mention --config"
done

# The installed server starts (from the installed example configuration, its address overridden
# on the command line) and prints "listening on".
examples=$tmp/usr/share/doc/roam/examples
for f in server.toml proxy.toml socks.toml; do [ -f "$examples/$f" ] || fail "missing example $f"; done
"$roam" server --config "$examples/server.toml" --listen 127.0.0.1:0 2>"$tmp/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on 127.0.0.1:" "$tmp/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1   # polling the log, 10 s deadline
done
grep -q "listening on 127.0.0.1:" "$tmp/server.log" || { cat "$tmp/server.log"; fail "installed roam server did not print 'listening on'"; }
kill "$server_pid"; wait "$server_pid" || true; server_pid=""

# Man pages: present for roam and every subcommand, and rendered by groff without a warning.
man1=$tmp/usr/share/man/man1
for page in roam roam-server roam-connect roam-proxy roam-socks roam-demo; do
  [ -f "$man1/$page.1" ] || fail "missing man page $page.1"
done
if command -v groff >/dev/null; then
  for page in "$man1"/*.1; do
    warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1 >/dev/null) || fail "groff failed on $page"
    [ -z "$warnings" ] || fail "groff warnings in $page: $warnings"
    for section in NAME SYNOPSIS DESCRIPTION OPTIONS "SEE ALSO"; do
      grep -q "^\.SH \"\?$section" "$page" || fail "$page has no $section section"
    done
  done
  # Every flag the installed binary lists is in its subcommand's page.
  for sub in server connect proxy socks demo; do
    for flag in $(grep -oE -- '^  (-[a-z],)?--[a-z][a-z-]*' "$tmp/help-$sub" | sed 's/.*--/--/' | sort -u); do
      grep -q -- "${flag//-/\\\\-}" "$man1/roam-$sub.1" || fail "roam-$sub.1 does not document $flag"
    done
  done
else
  echo "SKIP man page rendering: groff is not installed"
fi

# systemd units and the sysusers.d entry.
units=$tmp/usr/lib/systemd
for u in system/roam-server.service system/roam-proxy.service user/roam-socks.service; do
  [ -f "$units/$u" ] || fail "missing unit $u"
  grep -q "^ExecStart=$tmp/usr/bin/roam " "$units/$u" || fail "$u does not start the installed binary"
  grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' "$units/$u" || fail "$u has no ExecReload"
done
for u in roam-server roam-proxy; do
  for d in NoNewPrivileges=yes PrivateTmp=yes ProtectSystem=strict ProtectHome=yes LimitNOFILE=1048576 \
           CapabilityBoundingSet= RestrictAddressFamilies= "ExecStart=.* --config /etc/roam/${u#roam-}.toml"; do
    grep -q "^$d" "$units/system/$u.service" || fail "$u.service lacks $d"
  done
done
[ -f "$tmp/usr/lib/sysusers.d/roam.conf" ] || fail "missing sysusers.d/roam.conf"
if command -v systemd-analyze >/dev/null; then
  for u in "$units"/system/*.service; do
    out=$(MANPATH="$tmp/usr/share/man:" systemd-analyze verify "$u" 2>&1) || fail "systemd-analyze verify $u: $out"
    # verify prints problems even when it exits 0; only lines about our unit count.
    if grep -F "$(basename "$u")" <<<"$out"; then fail "systemd-analyze verify reports problems in $u"; fi
  done
  # A user manager needs a runtime directory; a private one serves the offline check.
  install -d -m 700 "$tmp/run"
  out=$(XDG_RUNTIME_DIR="$tmp/run" MANPATH="$tmp/usr/share/man:" \
        systemd-analyze --user verify "$units/user/roam-socks.service" 2>&1) ||
    fail "systemd-analyze --user verify roam-socks.service: $out"
  if grep -F "roam-socks.service" <<<"$out"; then fail "systemd-analyze reports problems in roam-socks.service"; fi
else
  echo "SKIP systemd-analyze verify: systemd-analyze is not installed"
fi

# Documentation.
for d in README.md DESIGN.md PROTOCOL.md; do
  [ -f "$tmp/usr/share/doc/roam/$d" ] || fail "missing doc $d"
done
echo "install test: all checks passed in $tmp/usr"
