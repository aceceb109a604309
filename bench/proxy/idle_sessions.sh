#!/usr/bin/env bash
# Memory per idle session and daemon CPU per session set-up, with N concurrent sessions, all on
# 127.0.0.1 and all held open at once:
#   MODE=proxy   N local clients → roam socks → (N resumable sessions) → roam proxy → N connections
#                to an idle TCP server (MSOCKS)
#   MODE=server  N local clients → roam connect --local → (N sessions) → roam server → N
#                connections to the idle TCP server (Migrate)
#
# usage: bench/proxy/idle_sessions.sh [ROAM_BIN] [N] [MODE]   (defaults: build/roam, 10000, proxy)
#
# Reports VmRSS of both daemons before and after, divided by N (user-space memory per idle
# session; retention buffers are empty on an idle session and freed), their live heap per session
# (glibc mallinfo2, when $MALLINFO_SO names bench's libroam_mallinfo.so, loaded with LD_PRELOAD),
# the server-side daemon's CPU time (utime+stime from /proc/PID/stat) per session, handshake
# (and for the proxy the SOCKS request) and connect to the target included, and the CPU both
# daemons spend on the idle sessions (heartbeats) over 5 s.
#
# Descriptors: each daemon holds two per session (its two TCP connections), so N needs
# RLIMIT_NOFILE ≥ 2N + ~20 in every process. The script raises its own soft limit to the hard
# limit, and tries to raise the hard limit to 2N+1000 (needs CAP_SYS_RESOURCE); the daemons
# inherit it and raise their soft limit to the hard limit themselves. When the hard limit cannot
# be raised, N is lowered to what it allows and the reason is printed (see bench/scale/README.md).
set -euo pipefail
ROAM_BIN=${1:-${ROAM_BIN:-build/roam}}
N=${2:-10000}
MODE=${3:-proxy}
exec python3 - "$ROAM_BIN" "$N" "$MODE" <<'PY'
import os, re, resource, shutil, signal, socket, struct, subprocess, sys, tempfile, threading, time

roam, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode not in ('proxy', 'server'):
    sys.exit('idle_sessions: MODE is proxy or server')
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
    capbnd = int(re.search(r'CapBnd:\s*([0-9a-f]+)', open('/proc/self/status').read()).group(1), 16)
    why = ('CAP_SYS_RESOURCE is not in this process\'s capability bounding set (CapBnd), so not even '
           'root can raise a hard limit here' if not capbnd >> 24 & 1 else
           'raising it failed (not root?)')
    n_max = (hard - 100) // 2
    print(f'idle_sessions: RLIMIT_NOFILE hard limit is {hard} (< 2N+100 = {2 * n + 100}) and cannot be '
          f'raised: {why}. Each daemon needs two descriptors per session: running N={n_max} instead of {n}.')
    n = n_max
tck = os.sysconf('SC_CLK_TCK')
children = []

mallinfo_so = os.environ.get('MALLINFO_SO', '')
logdir = tempfile.mkdtemp(prefix='roam-idle-')
def spawn(argv, name):  # a daemon with its stderr in logdir/NAME.log (and heap figures beside it)
    env = dict(os.environ)
    if mallinfo_so:
        env['LD_PRELOAD'] = mallinfo_so
        env['ROAM_MALLINFO_FILE'] = f'{logdir}/{name}.mallinfo'
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=open(f'{logdir}/{name}.log', 'w'), env=env)
    p.mallinfo = env.get('ROAM_MALLINFO_FILE')
    p.log = f'{logdir}/{name}.log'
    children.append(p)
    return p

def wait_port(p):
    deadline = time.time() + 10
    while time.time() < deadline:
        m = re.search(r'listening on 127\.0\.0\.1:(\d+)', open(p.log).read())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    sys.exit(f'idle_sessions: {p.args[1]} did not start:\n{open(p.log).read()}')

def tails():  # the last lines of every daemon's log, for a failure message
    return ''.join(f'--- {p.log}\n' + ''.join(open(p.log).readlines()[-15:]) for p in children)

def rss_kib(pid):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0

def heap(p):  # live heap bytes (mallinfo2) as of the last half second, or None
    if not p.mallinfo:
        return None
    try:
        return int(open(p.mallinfo).read().split()[0])
    except (OSError, ValueError, IndexError):
        return None

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
    if mode == 'proxy':
        daemon = spawn([roam, 'proxy', '--listen', '127.0.0.1:0', '--allow-dest', '127.0.0.0/8'], 'proxy')
        agent = spawn([roam, 'socks', '--proxy', f'127.0.0.1:{wait_port(daemon)}', '--listen', '127.0.0.1:0'], 'socks')
        names, what = ('roam proxy', 'roam socks'), 'MSOCKS sessions (roam socks → roam proxy)'
    else:
        daemon = spawn([roam, 'server', '--listen', '127.0.0.1:0', '--forward', f'127.0.0.1:{port}'], 'server')
        agent = spawn([roam, 'connect', f'127.0.0.1:{wait_port(daemon)}', '--local', '127.0.0.1:0'], 'connect')
        names, what = ('roam server', 'roam connect'), 'Migrate sessions (roam connect --local → roam server)'
    aport = wait_port(agent)
    time.sleep(1.0)  # let both settle (and the heap writer run) before the baseline; not a readiness wait
    rss0, heap0, cpu0 = [rss_kib(daemon.pid), rss_kib(agent.pid)], [heap(daemon), heap(agent)], cpu(daemon.pid)
    req = bytes([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]) + struct.pack('>H', port)
    t0 = time.time()
    batch = 500
    for start in range(0, n, batch):
        socks = []
        for _ in range(min(batch, n - start)):
            s = socket.create_connection(('127.0.0.1', aport))
            if mode == 'proxy':
                s.sendall(req)
            socks.append(s)
        for s in socks if mode == 'proxy' else []:
            s.settimeout(30)
            got = b''
            while len(got) < 12:
                try:
                    d = s.recv(12 - len(got))
                except OSError as e:
                    sys.exit(f'idle_sessions: session {len(clients)} got no SOCKS reply: {e}\n{tails()}')
                if not d:
                    sys.exit(f'idle_sessions: session {len(clients)} closed before its reply\n{tails()}')
                got += d
            if got[:2] != b'\x05\x00' or got[3] != 0:
                sys.exit(f'idle_sessions: bad reply {got.hex()}')
        clients.extend(socks)
    deadline = time.time() + 60
    while len(held) < n and time.time() < deadline:  # every session is up end to end
        time.sleep(0.05)
    setup = time.time() - t0
    time.sleep(2.5)  # idle for two heartbeats: acknowledgements settle and idle rings are freed
    rss1, heap1, cpu1 = [rss_kib(daemon.pid), rss_kib(agent.pid)], [heap(daemon), heap(agent)], cpu(daemon.pid)
    idle0 = [cpu(daemon.pid), cpu(agent.pid)]
    time.sleep(5)  # CPU that idle sessions cost (heartbeats): measured over 5 s
    idle = [(cpu(p.pid) - c) / 5 for p, c in zip((daemon, agent), idle0)]
    print(f'{n} concurrent idle {what}, set up in {setup:.1f} s')
    print(f'  the target server held {len(held)} connections')
    for i, name in enumerate(names):
        line = (f'  {name}: RSS {rss0[i] / 1024:.1f} → {rss1[i] / 1024:.1f} MiB, '
                f'{(rss1[i] - rss0[i]) / n:.1f} KiB per session')
        if heap0[i] is not None and heap1[i] is not None:
            line += (f'; heap in use {heap0[i] / 2**20:.1f} → {heap1[i] / 2**20:.1f} MiB, '
                     f'{(heap1[i] - heap0[i]) / n / 1024:.1f} KiB per session')
        if i == 0:
            line += f'; CPU {1e6 * (cpu1 - cpu0) / n:.0f} µs per session set-up'
        line += f'; idle CPU {100 * idle[i]:.1f}% of a core ({1e6 * idle[i] / n:.1f} µs per session per second)'
        print(line)
    if len(held) < n:
        sys.exit(f'idle_sessions: only {len(held)} of {n} sessions reached the target\n{tails()}')
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
    if os.environ.get('KEEP'):
        print(f'idle_sessions: logs kept in {logdir}')
    else:
        shutil.rmtree(logdir, ignore_errors=True)
PY
