#!/usr/bin/env bash
# Proxy benchmark: throughput and proxy CPU seconds per GB of one curl download through
#   roam proxy (plain SOCKS5: splice(2) through pooled pipes), roam socks -> roam proxy (the mobile
#   leg: a resumable session), Dante (danted), microsocks, and a direct connection,
# all in the same run, interleaved, medians and spread (SPEC quality bars: ratios side by side).
#
# usage: bench/proxy/proxy_bench.sh [ROAM_BIN] [SIZE_MIB] [RUNS]
#   ROAM_BIN  default build/roam (or $ROAM_BIN)
#   SIZE_MIB  default 1024 (the file lives in /dev/shm and is served with sendfile)
#   RUNS      default 5 (each variant once per round, rounds interleaved)
#
# CPU is read from /proc/PID/stat (utime+stime, plus cutime+cstime for reaped children) summed over
# the proxy's process tree, before and after each download. Loopback: three TCP endpoints share
# the machine's cores, so throughput is CPU-bound and the CPU figure is the one to compare.
# Only 127.0.0.1 is used; only this script's own children are signalled.
set -euo pipefail
ROAM_BIN=${1:-${ROAM_BIN:-build/roam}}
SIZE_MIB=${2:-1024}
RUNS=${3:-5}
exec python3 - "$ROAM_BIN" "$SIZE_MIB" "$RUNS" <<'PY'
import os, re, signal, socket, statistics, subprocess, sys, tempfile, threading, time

roam, size_mib, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if not os.access(roam, os.X_OK):
    sys.exit(f"proxy_bench: {roam} is not executable (build first, or pass the roam binary)")
tck = os.sysconf('SC_CLK_TCK')
size = size_mib << 20
work = tempfile.mkdtemp(prefix='roam-proxy-bench-', dir='/dev/shm')
blob = os.path.join(work, 'file')
with open(blob, 'wb') as f:
    chunk = os.urandom(1 << 20)
    for _ in range(size_mib):
        f.write(chunk)

children = []
def spawn(argv, **kw):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
    children.append(p)
    return p

def cleanup():
    for p in children:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in children:
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            p.kill()
    subprocess.run(['rm', '-rf', work])

# --- an HTTP/1.0 server that answers every GET with the file, by sendfile ----------------------
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0))
srv.listen(64)
http_port = srv.getsockname()[1]
def serve(c):
    try:
        buf = b''
        while b'\r\n\r\n' not in buf:
            d = c.recv(4096)
            if not d:
                return
            buf += d
        c.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % size)
        with open(blob, 'rb') as f:
            off = 0
            while off < size:
                n = os.sendfile(c.fileno(), f.fileno(), off, size - off)
                if n == 0:
                    break
                off += n
    except OSError:
        pass
    finally:
        c.close()
def acceptor():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=acceptor, daemon=True).start()

def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p

def drain(fd):
    """Keeps reading a child's stderr so that it never blocks on a full pipe."""
    import select
    while True:
        select.select([fd], [], [])
        try:
            if not os.read(fd, 65536):
                return
        except BlockingIOError:
            pass
        except OSError:
            return

def wait_line(proc, pattern, timeout=10):
    """Reads the child's stderr until `pattern` matches; returns the match (readiness, no sleeps)."""
    deadline = time.time() + timeout
    buf = ''
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    import select
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.time()))
        if not r:
            continue
        d = os.read(fd, 65536)
        if not d:
            break
        buf += d.decode(errors='replace')
        m = re.search(pattern, buf)
        if m:
            threading.Thread(target=drain, args=(fd,), daemon=True).start()
            return m
    sys.exit(f"proxy_bench: {proc.args[0]} never said {pattern!r}:\n{buf}")

def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                st = open(f'/proc/{d}/stat').read()
                ppid = int(st[st.rindex(')') + 2:].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out

def cpu_ticks(pids):
    t = 0
    for pid in pids:
        for p in tree(pid):
            try:
                st = open(f'/proc/{p}/stat').read()
                f = st[st.rindex(')') + 2:].split()
                t += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])  # utime stime cutime cstime
            except (OSError, ValueError):
                pass
    return t

variants = {}
try:
    # roam proxy (plain SOCKS5, spliced)
    rp = spawn([roam, 'proxy', '--listen', '127.0.0.1:0', '--allow-dest', '127.0.0.0/8'],
               stderr=subprocess.PIPE)
    roam_port = int(wait_line(rp, r'listening on 127\.0\.0\.1:(\d+)').group(1))
    variants['roam proxy'] = ('--socks5', roam_port, [rp.pid])

    rs = spawn([roam, 'socks', '--proxy', f'127.0.0.1:{roam_port}', '--listen', '127.0.0.1:0'],
               stderr=subprocess.PIPE)
    socks_port = int(wait_line(rs, r'listening on 127\.0\.0\.1:(\d+)').group(1))
    variants['roam socks->proxy'] = ('--socks5', socks_port, [rs.pid, rp.pid])

    if os.access('/usr/sbin/danted', os.X_OK):
        dport = free_port()
        conf = os.path.join(work, 'danted.conf')
        with open(conf, 'w') as f:
            f.write(f"""logoutput: stderr
internal: 127.0.0.1 port = {dport}
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
""")
        dp = spawn(['/usr/sbin/danted', '-f', conf, '-N', '1', '-p', os.path.join(work, 'danted.pid')],
                   stderr=subprocess.PIPE)
        # Dante logs nothing at startup; readiness is its port accepting a connection.
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(('127.0.0.1', dport), timeout=1).close(); break
            except OSError:
                if time.time() > deadline or dp.poll() is not None:
                    sys.exit('proxy_bench: danted did not start:\n' + dp.stderr.read().decode())
                time.sleep(0.05)
        variants['dante'] = ('--socks5', dport, [dp.pid])
    else:
        print('dante-server is not installed: no Dante figures', file=sys.stderr)

    if os.access('/usr/bin/microsocks', os.X_OK):
        mport = free_port()
        mp = spawn(['/usr/bin/microsocks', '-i', '127.0.0.1', '-p', str(mport)], stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(('127.0.0.1', mport), timeout=1).close(); break
            except OSError:
                if time.time() > deadline or mp.poll() is not None:
                    sys.exit('proxy_bench: microsocks did not start')
                time.sleep(0.05)
        variants['microsocks'] = ('--socks5', mport, [mp.pid])
    else:
        print('microsocks is not installed: no microsocks figures', file=sys.stderr)
    variants['direct'] = (None, None, [])

    url = f'http://127.0.0.1:{http_port}/file'
    results = {k: [] for k in variants}
    for r in range(runs):
        for name, (mode, port, pids) in variants.items():
            argv = ['curl', '-s', '-S', '-f', '-o', '/dev/null', '-w', '%{size_download} %{time_total}']
            if mode:
                argv += [mode, f'127.0.0.1:{port}']
            argv.append(url)
            c0 = cpu_ticks(pids)
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
            c1 = cpu_ticks(pids)
            got, secs = int(out[0]), float(out[1])
            if got != size:
                sys.exit(f'proxy_bench: {name}: got {got} bytes of {size}')
            gbit = got * 8 / secs / 1e9
            cpu_per_gb = (c1 - c0) / tck / (got / 1e9)
            results[name].append((gbit, cpu_per_gb))
            print(f'round {r + 1} {name:18s} {gbit:6.2f} Gbit/s  {cpu_per_gb:6.3f} CPU s/GB', file=sys.stderr)

    def fmt(vals):
        return f'{statistics.median(vals):7.2f} [{min(vals):.2f}–{max(vals):.2f}]'
    direct = statistics.median(v[0] for v in results['direct'])
    print(f'\n{size_mib} MiB curl downloads over loopback, {runs} interleaved rounds; median [min–max]')
    print(f'{"path":20s} {"Gbit/s":>22s} {"% direct":>9s} {"proxy CPU s/GB":>24s}')
    for name, vals in results.items():
        tp = [v[0] for v in vals]
        cpu = [v[1] for v in vals]
        print(f'{name:20s} {fmt(tp):>22s} {100 * statistics.median(tp) / direct:8.0f}% '
              f'{(fmt(cpu) if name != "direct" else "—"):>24s}')
finally:
    cleanup()
PY
