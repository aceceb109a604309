#!/bin/bash
# libroam as a downstream user gets it: `cmake --install` into a temporary prefix, then
# examples/echo_server.cpp compiled with only `pkg-config --cflags --libs roam` (no source-tree
# include path), run, and checked with the build's roam_file_client over 127.0.0.1; then the
# complete example of docs/LIBRARY.md, built and run the same way.
# usage: pkgconfig_install_test.sh BUILD_DIR SOURCE_DIR CXX
set -euo pipefail
build=$1 src=$2 cxx=$3
tmp=$(mktemp -d /tmp/roam-lib-install-XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" --component lib >"$tmp/install.log"
pc=$(find "$tmp/prefix" -name roam.pc)
[ -n "$pc" ] || { echo "roam.pc was not installed"; cat "$tmp/install.log"; exit 1; }
[ -f "$tmp/prefix/include/roam/roam.hpp" ] || { echo "roam.hpp was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
echo "pkg-config roam: $(pkg-config --modversion roam): $(pkg-config --cflags --libs roam)"

# shellcheck disable=SC2046
"$cxx" -std=c++20 -O1 "$src/examples/echo_server.cpp" -o "$tmp/echo" $(pkg-config --cflags --libs roam)
"$tmp/echo" --help | grep -q '^usage: roam_echo_server' || { echo "--help printed no usage"; exit 1; }

# Run it: its first stderr line is "listening on ADDR:PORT" (a FIFO, read with a deadline).
mkfifo "$tmp/err"
"$tmp/echo" --listen 127.0.0.1:0 --quiet 2>"$tmp/err" &
pid=$!
exec 3<"$tmp/err"
IFS= read -t 10 -r line <&3 || { echo "installed echo server did not start"; exit 1; }
cat <&3 >"$tmp/echo.log" &
addr=${line#listening on }
head -c 1000000 /dev/urandom >"$tmp/data"
"$build/examples/roam_file_client" --connect "$addr" --file "$tmp/data" --quiet
echo "installed example echoed 1000000 bytes exactly"

# docs/LIBRARY.md's complete minimal example (its cpp block with a main(); the others are
# fragments), built the same way, must run and print its echo.
awk '/^```cpp/{f=1;b="";next} /^```/{if (f && b ~ /int main\(/) printf "%s", b; f=0; next} f{b=b $0 "\n"}' \
  "$src/docs/LIBRARY.md" >"$tmp/doc_example.cpp"
grep -q 'int main(' "$tmp/doc_example.cpp" || { echo "docs/LIBRARY.md has no complete example"; exit 1; }
# shellcheck disable=SC2046
"$cxx" -std=c++20 -O1 "$tmp/doc_example.cpp" -o "$tmp/doc_example" $(pkg-config --cflags --libs roam)
timeout 30 "$tmp/doc_example" 2>/dev/null | grep -qx 'hello, roam (clean end)' ||
  { echo "docs/LIBRARY.md's example did not print its echo"; exit 1; }
echo "docs/LIBRARY.md's example builds and runs"
