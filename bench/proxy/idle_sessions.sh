#!/usr/bin/env bash
# Memory per idle session and daemon CPU per session set-up, with N concurrent sessions, all on
# 127.0.0.1 and all held open at once:
#   MODE=proxy   N local clients → roam socks → (N resumable sessions) → roam proxy → N connections
#                to an idle TCP server (MSOCKS)
#   MODE=server  N local clients → roam connect --local → (N sessions) → roam server → N
#                connections to the idle TCP server (Migrate)
#
# usage: bench/proxy/idle_sessions.sh [ROAM_BIN] [N] [MODE] [WORKERS]
#        (defaults: build/roam, 10000, proxy, 1; WORKERS > 1 runs the daemon with --workers)
#
# Reports VmRSS of the daemon (of each worker with WORKERS > 1) and of the agents before and
# after, divided by the sessions each holds (user-space memory per idle session; retention
# buffers are empty on an idle session and freed), their live heap per session (glibc mallinfo2,
# when $MALLINFO_SO names bench's libroam_mallinfo.so, loaded with LD_PRELOAD), the daemon's CPU
# time (utime+stime from /proc/PID/stat, all workers and the parent) per session, handshake (and
# for the proxy the SOCKS request) and connect to the target included, and the CPU the daemon and
# the agents spend on the idle sessions (heartbeats) over 5 s.
#
# Descriptors: a process holds two per session (its two TCP connections), so one process needs
# RLIMIT_NOFILE >= 2N + ~20. The script raises its own soft limit to the hard limit, and tries to
# raise the hard limit to 2N+1000 (needs CAP_SYS_RESOURCE); the daemons inherit it and raise their
# soft limit to the hard limit themselves. Where the hard limit stays lower, the client side is
# split over as many agents (roam socks / roam connect --local) as it takes, the idle target runs
# in its own process, and the daemon needs WORKERS >= N / ((hard-100)/2); N is lowered to what the
# limit allows otherwise, with the reason (see bench/scale/README.md, deployment guide).
set -euo pipefail
ROAM_BIN=${1:-${ROAM_BIN:-build/roam}}
N=${2:-10000}
MODE=${3:-proxy}
WORKERS=${4:-1}
exec python3 - "$ROAM_BIN" "$N" "$MODE" "$WORKERS" <<'PY'
import json, os, re, resource, shutil, signal, socket, struct, subprocess, sys, tempfile, threading, time

roam, n, mode, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
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
cap = (hard - 100) // 2  # sessions one process can hold
# With workers, SO_REUSEPORT splits sessions by a hash: leave each worker 10% of room for the skew.
n_max = cap if workers == 1 else workers * cap * 9 // 10
if n > n_max:
    capbnd = int(re.search(r'CapBnd:\s*([0-9a-f]+)', open('/proc/self/status').read()).group(1), 16)
    why = ('CAP_SYS_RESOURCE is not in this process\'s capability bounding set (CapBnd), so not even '
           'root can raise a hard limit here' if not capbnd >> 24 & 1 else
           'raising it failed (not root?)')
    print(f'idle_sessions: RLIMIT_NOFILE hard limit is {hard} (< 2N+100 = {2 * n + 100}) and cannot be '
          f'raised: {why}. A process needs two descriptors per session, so {workers} worker(s) hold '
          f'about {n_max}: running N={n_max} instead of {n} (more: WORKERS={-(-n * 10 // (cap * 9))}).')
    n = n_max
# The client side: agents of at most 90% of a process's capacity each; this script holds one
# descriptor per session and the idle target runs in its own process.
agents_n = max(1, -(-n // (cap * 9 // 10)))
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

def heap(p, pid=None):  # live heap bytes (mallinfo2) as of the last half second, or None
    if not p.mallinfo:
        return None
    path = p.mallinfo if pid is None or pid == p.pid else f'{p.mallinfo}.{pid}'  # a forked worker's
    try:
        return int(open(path).read().split()[0])
    except (OSError, ValueError, IndexError):
        return None

def cpu(pid):
    st = open(f'/proc/{pid}/stat').read()
    f = st[st.rindex(')') + 2:].split()
    return (int(f[11]) + int(f[12])) / tck

def children_of(pid):
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                st = open(f'/proc/{d}/stat').read()
            except OSError:
                continue
            if int(st[st.rindex(')') + 2:].split()[1]) == pid:
                out.append(int(d))
    return sorted(out)

# An idle server in its own process (it holds N descriptors): accepts and holds every connection,
# and keeps the count in a file.
count_file = f'{logdir}/held'
target = subprocess.Popen([sys.executable, '-c', f'''
import os, resource, socket
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(4096)
print(srv.getsockname()[1], flush=True)
held = []
while True:
    c, _ = srv.accept()
    held.append(c)
    if len(held) % 100 == 0 or len(held) > {n} - 100:
        open({count_file!r} + '.tmp', 'w').write(str(len(held)))
        os.rename({count_file!r} + '.tmp', {count_file!r})
'''], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
children.append(target)
target.log = '/dev/null'
port = int(target.stdout.readline())
def held():
    try:
        return int(open(count_file).read())
    except (OSError, ValueError):
        return 0

clients = []
try:
    wflags = ['--workers', str(workers)] if workers > 1 else []
    ctl, actl = ['--control-dir', f'{logdir}/ctl'], ['--control-dir', f'{logdir}/agents']
    if mode == 'proxy':
        daemon = spawn([roam, 'proxy', '--listen', '127.0.0.1:0', '--allow-dest', '127.0.0.0/8'] + wflags + ctl, 'proxy')
        dport = wait_port(daemon)
        agents = [spawn([roam, 'socks', '--proxy', f'127.0.0.1:{dport}', '--listen', '127.0.0.1:0'] + actl, f'socks{i}')
                  for i in range(agents_n)]
        names, what = ('roam proxy', 'roam socks'), 'MSOCKS sessions (roam socks → roam proxy)'
    else:
        daemon = spawn([roam, 'server', '--listen', '127.0.0.1:0', '--forward', f'127.0.0.1:{port}'] + wflags + ctl, 'server')
        dport = wait_port(daemon)
        agents = [spawn([roam, 'connect', f'127.0.0.1:{dport}', '--local', '127.0.0.1:0'] + actl, f'connect{i}')
                  for i in range(agents_n)]
        names, what = ('roam server', 'roam connect'), 'Migrate sessions (roam connect --local → roam server)'
    aports = [wait_port(a) for a in agents]
    deadline = time.time() + 10
    wpids = [daemon.pid] if workers == 1 else []
    while workers > 1 and len(wpids) < workers and time.time() < deadline:
        wpids = children_of(daemon.pid)
        time.sleep(0.05)
    if len(wpids) != workers:
        sys.exit(f'idle_sessions: found {len(wpids)} of {workers} workers\n{tails()}')
    dpids = wpids if workers == 1 else [daemon.pid] + wpids  # CPU: the parent too
    time.sleep(1.0)  # let everything settle (and the heap writers run) before the baseline; not a readiness wait
    rss0 = {p: rss_kib(p) for p in wpids}
    heap0 = {p: heap(daemon, p) for p in wpids}
    arss0, aheap0 = sum(rss_kib(a.pid) for a in agents), [heap(a) for a in agents]
    cpu0 = {p: cpu(p) for p in dpids}
    req = bytes([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]) + struct.pack('>H', port)
    t0 = time.time()
    batch = 500
    for start in range(0, n, batch):
        socks = []
        for k in range(min(batch, n - start)):
            s = socket.create_connection(('127.0.0.1', aports[(start + k) % agents_n]))
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
    while held() < n and time.time() < deadline:  # every session is up end to end
        time.sleep(0.05)
    setup = time.time() - t0
    time.sleep(2.5)  # idle for two heartbeats: acknowledgements settle and idle rings are freed
    rss1 = {p: rss_kib(p) for p in wpids}
    heap1 = {p: heap(daemon, p) for p in wpids}
    arss1, aheap1 = sum(rss_kib(a.pid) for a in agents), [heap(a) for a in agents]
    cpu1 = {p: cpu(p) for p in dpids}
    st = json.loads(subprocess.run([roam, 'status', '--json', '--timeout', '10'] + ctl, capture_output=True,
                                   text=True).stdout or '{}')
    per = {d['pid']: sum(1 for x in d['sessions'] if x['state'] != 'closed') for d in st.get('daemons', [])}
    idle0 = [sum(cpu(p) for p in dpids), sum(cpu(a.pid) for a in agents)]
    time.sleep(5)  # CPU that idle sessions cost (heartbeats): measured over 5 s
    idle = [(sum(cpu(p) for p in dpids) - idle0[0]) / 5, (sum(cpu(a.pid) for a in agents) - idle0[1]) / 5]
    print(f'{n} concurrent idle {what}, set up in {setup:.1f} s; {names[0]} with {workers} worker(s), '
          f'{agents_n} {names[1]} process(es)')
    print(f'  the target server held {held()} connections')
    for k, p in enumerate(wpids):
        m = per.get(p, 0) if workers > 1 else n
        who = f'{names[0]} worker {k + 1}/{workers}' if workers > 1 else names[0]
        line = (f'  {who}: {m} sessions, RSS {rss0[p] / 1024:.1f} → {rss1[p] / 1024:.1f} MiB, '
                f'{(rss1[p] - rss0[p]) / max(m, 1):.1f} KiB per session')
        if heap0[p] is not None and heap1[p] is not None:
            line += (f'; heap in use {heap0[p] / 2**20:.1f} → {heap1[p] / 2**20:.1f} MiB, '
                     f'{(heap1[p] - heap0[p]) / max(m, 1) / 1024:.1f} KiB per session')
        line += f'; CPU {1e6 * (cpu1[p] - cpu0[p]) / max(m, 1):.0f} µs per session set-up'
        print(line)
    dcpu = sum(cpu1[p] - cpu0[p] for p in dpids)
    print(f'  {names[0]} in all: CPU {1e6 * dcpu / n:.0f} µs per session set-up'
          + (f' (parent {1e6 * (cpu1[daemon.pid] - cpu0[daemon.pid]) / n:.1f})' if workers > 1 else '')
          + f'; idle CPU {100 * idle[0]:.1f}% of a core ({1e6 * idle[0] / n:.1f} µs per session per second)')
    line = (f'  {names[1]} ({agents_n} process(es)): RSS {arss0 / 1024:.1f} → {arss1 / 1024:.1f} MiB, '
            f'{(arss1 - arss0) / n:.1f} KiB per session')
    if None not in aheap0 + aheap1:
        line += (f'; heap in use {sum(aheap0) / 2**20:.1f} → {sum(aheap1) / 2**20:.1f} MiB, '
                 f'{(sum(aheap1) - sum(aheap0)) / n / 1024:.1f} KiB per session')
    line += f'; idle CPU {100 * idle[1]:.1f}% of a core ({1e6 * idle[1] / n:.1f} µs per session per second)'
    print(line)
    if held() < n:
        sys.exit(f'idle_sessions: only {held()} of {n} sessions reached the target\n{tails()}')
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
