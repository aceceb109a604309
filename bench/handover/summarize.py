#!/usr/bin/env python3
"""Prints the handover benchmark's table from the CSV written by hb_tool (one row per handover).

usage: summarize.py CSV [ROAM_CLIENT_LOG] [RTT_MS]
"""
import csv
import math
import re
import sys


def pct(xs, p):
    if not xs:
        return math.nan
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def f(v, w=9):
    return f"{'-':>{w}}" if v is None or (isinstance(v, float) and math.isnan(v)) else f" {v:>{w - 1}.2f}"


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return math.nan


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    log = sys.argv[2] if len(sys.argv) > 2 else None
    rtt = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
    order_s = ["roam", "mptcp", "tcp"]
    order_m = ["bbm", "mbb", "mbb-backup", "outage"]
    groups = {}
    for r in rows:
        groups.setdefault((r["system"], r["mode"]), []).append(r)
    keys = sorted(groups, key=lambda k: (order_m.index(k[1]) if k[1] in order_m else 9,
                                         order_s.index(k[0]) if k[0] in order_s else 9))
    print(f"Handover latency: first record delivered on the new path after the new address+route is usable "
          f"(mbb-backup: after the old one is removed; outage: after the drop is lifted). ms.")
    print(f"Stall: the longest any record took from sender to application (arrival - send time) around the "
          f"change; ctl: the same over an equally long window right after, with no change (the machine's own "
          f"hiccups); gap: the largest gap between arrivals (includes the sender's scheduling hiccups). "
          f"RTT mob<->srv {rtt:.3f} ms.")
    hdr = (f"{'mode':<11}{'system':<7}{'n':>4}{'ok':>4}{'dies':>5} | {'lat med':>9}{'p90':>9}{'max':>9} | "
           f"{'stall med':>9}{'p90':>9}{'max':>9} | {'ctl med':>9}{'p90':>9}{'max':>9} | {'gap max':>8} holes dups")
    print(hdr)
    print("-" * len(hdr))
    for k in keys:
        g = groups[k]
        ok = [r for r in g if r["outcome"] == "ok"]
        lat = [num(r["latency_ms"]) for r in ok]
        st = [num(r["stall_ms"]) for r in ok]
        gp = [num(r["gap_ms"]) for r in ok]
        ctl = [num(r.get("ctl_stall_ms", "")) for r in ok]
        ctl = [c for c in ctl if c == c]  # drop NaN (older CSVs have no control column)
        holes = max(int(r["holes"]) for r in g)
        dups = max(int(r["dups"]) for r in g)
        if ok:
            line = (f"{k[1]:<11}{k[0]:<7}{len(g):>4}{len(ok):>4}{len(g) - len(ok):>5} | "
                    f"{f(pct(lat, 50))}{f(pct(lat, 90))}{f(max(lat))} | "
                    f"{f(pct(st, 50))}{f(pct(st, 90))}{f(max(st))} | "
                    + (f"{f(pct(ctl, 50))}{f(pct(ctl, 90))}{f(max(ctl))}" if ctl else f"{'n/a':>27}")
                    + f" | {f(max(gp), 8)} {holes:>5} {dups:>4}")
        else:
            line = (f"{k[1]:<11}{k[0]:<7}{len(g):>4}{0:>4}{len(g):>5} | {'dies: nothing within the bound':<27} |"
                    f"{'n/a':>27} |")
        print(line)
    print()
    print("Where the time goes (medians, ms after the reference instant, segments on the new path's")
    print("connection seen by an AF_PACKET socket on the mobile host: SYN out, SYN-ACK in, first and")
    print("second payload out/in (roam: MIGRATE, CHALLENGE, RESPONSE, ACCEPT+data), first record packet in,")
    print("first record delivered to the application):")
    hdr = (f"{'mode':<11}{'system':<7}{'SYN':>9}{'SYN-ACK':>9}{'out1':>9}{'in1':>9}{'out2':>9}{'in2':>9}"
           f"{'rec pkt':>9}{'app':>9}{' conns':>6}")
    print(hdr)
    print("-" * len(hdr))
    for k in keys:
        if k[1] == "outage":
            continue
        ok = [r for r in groups[k] if r["outcome"] == "ok"]
        if not ok:
            continue
        med = lambda c: pct([x for x in (num(r[c]) for r in ok) if not math.isnan(x)], 50)
        conns = pct([num(r["new_conns"]) for r in ok], 50)
        print(f"{k[1]:<11}{k[0]:<7}{f(med('syn_ms'))}{f(med('synack_ms'))}{f(med('out1_ms'))}"
              f"{f(med('in1_ms'))}{f(med('out2_ms'))}{f(med('in2_ms'))}{f(med('first_pkt_ms'))}"
              f"{f(med('latency_ms'))}{conns:>6.0f}")
    if log:
        try:
            text = open(log).read()
        except OSError:
            text = ""
        took = [float(m) for m in re.findall(r"\] migrated to .*?, ([0-9.]+) ms after the old path", text)]
        if took:
            print()
            print(f"roam client log: {len(took)} migrations; 'ms after the old path was lost' "
                  f"median {pct(took, 50):.2f}, p90 {pct(took, 90):.2f}, max {max(took):.2f}")
    print()
    t = 3 * rtt + 2
    print(f"Targets (SPEC): handover median <= 3 RTT + 2 ms = {t:.2f} ms; make-before-break stall <= "
          f"1 RTT + 2 ms = {rtt + 2:.2f} ms (records arrive every 1 ms, so a gap of ~1 ms is no stall);")
    print("after an outage data flows again within 150 ms of the path returning (TCP, MPTCP: ~1.5 s).")


if __name__ == "__main__":
    main()
