#!/usr/bin/env bash
# Memory per idle MSOCKS session and proxy CPU per session set-up, with N concurrent sessions:
#   N local clients → roam socks → (N resumable sessions) → roam proxy → N connections to an idle
#   TCP server, all on 127.0.0.1 and all held open at once.
#
# usage: bench/proxy/idle_sessions.sh [ROAM_BIN] [N]      (defaults: build/roam, 10000)
#
# Reports VmRSS of `roam proxy` and `roam socks` before and after, divided by N (user-space memory
# per idle session; retention buffers are empty on an idle session and freed), and the proxy's
# CPU time (utime+stime from /proc/PID/stat) per session, handshake, SOCKS request and connect to
# the target included. Needs RLIMIT_NOFILE ≥ 2N+100 for this script (raised to the hard limit);
# the daemons raise theirs to the hard limit themselves; as root the script raises the hard limit).
set -euo pipefail
ROAM_BIN=${1:-${ROAM_BIN:-build/roam}}
N=${2:-10000}
exec python3 - "$ROAM_BIN" "$N" <<'PY'
import os, re, resource, select, signal, socket, struct, subprocess, sys, threading, time

roam, n = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 2 * n + 1000  # each side holds two descriptors per session (the daemons inherit this)
if hard < want:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root may raise the hard limit
        hard = want
    except (ValueError, OSError):
        pass
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if hard < 2 * n + 100:
    sys.exit(f'idle_sessions: RLIMIT_NOFILE hard limit {hard} is too low for N={n}')
tck = os.sysconf('SC_CLK_TCK')
children = []

def spawn(argv):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children.append(p)
    return p

def wait_port(p):
    fd = p.stderr.fileno()
    buf = ''
    deadline = time.time() + 10
    while time.time() < deadline:
        if select.select([fd], [], [], 1)[0]:
            d = os.read(fd, 65536)
            if not d:
                break
            buf += d.decode(errors='replace')
            m = re.search(r'listening on 127\.0\.0\.1:(\d+)', buf)
            if m:
                threading.Thread(target=lambda: [0 for _ in iter(lambda: os.read(fd, 65536), b'')], daemon=True).start()
                return int(m.group(1))
    sys.exit(f'idle_sessions: {p.args[1]} did not start:\n{buf}')

def rss_kib(pid):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0

def cpu(pid):
    st = open(f'/proc/{pid}/stat').read()
    f = st[st.rindex(')') + 2:].split()
    return (int(f[11]) + int(f[12])) / tck

# An idle server: accepts and holds every connection.
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0))
srv.listen(4096)
held = []
def acceptor():
    while True:
        c, _ = srv.accept()
        held.append(c)
threading.Thread(target=acceptor, daemon=True).start()
port = srv.getsockname()[1]

clients = []
try:
    proxy = spawn([roam, 'proxy', '--listen', '127.0.0.1:0', '--allow-dest', '127.0.0.0/8'])
    pport = wait_port(proxy)
    agent = spawn([roam, 'socks', '--proxy', f'127.0.0.1:{pport}', '--listen', '127.0.0.1:0'])
    sport = wait_port(agent)
    time.sleep(0.2)  # let both settle before the baseline (not a readiness wait)
    p_rss0, a_rss0, p_cpu0 = rss_kib(proxy.pid), rss_kib(agent.pid), cpu(proxy.pid)
    req = bytes([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]) + struct.pack('>H', port)
    t0 = time.time()
    batch = 500
    for start in range(0, n, batch):
        socks = []
        for _ in range(min(batch, n - start)):
            s = socket.create_connection(('127.0.0.1', sport))
            s.sendall(req)
            socks.append(s)
        for s in socks:
            s.settimeout(30)
            got = b''
            while len(got) < 12:
                d = s.recv(12 - len(got))
                if not d:
                    sys.exit(f'idle_sessions: session {len(clients)} closed before its reply')
                got += d
            if got[:2] != b'\x05\x00' or got[3] != 0:
                sys.exit(f'idle_sessions: bad reply {got.hex()}')
        clients.extend(socks)
    setup = time.time() - t0
    deadline = time.time() + 30
    while len(held) < n and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)  # idle for two heartbeats: acknowledgements settle and idle rings are freed
    p_rss1, a_rss1, p_cpu1 = rss_kib(proxy.pid), rss_kib(agent.pid), cpu(proxy.pid)
    print(f'{n} concurrent idle MSOCKS sessions (roam socks → roam proxy), set up in {setup:.1f} s')
    print(f'  server held {len(held)} connections')
    print(f'  roam proxy: RSS {p_rss0 / 1024:.1f} → {p_rss1 / 1024:.1f} MiB, '
          f'{(p_rss1 - p_rss0) / n:.1f} KiB per session; CPU {1e6 * (p_cpu1 - p_cpu0) / n:.0f} µs per session set-up')
    print(f'  roam socks: RSS {a_rss0 / 1024:.1f} → {a_rss1 / 1024:.1f} MiB, '
          f'{(a_rss1 - a_rss0) / n:.1f} KiB per session')
finally:
    for s in clients:
        s.close()
    for p in children:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in children:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
PY
