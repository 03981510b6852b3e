#!/usr/bin/env python3
"""Samples CPU % and RSS of named processes from /proc once a second until SIGTERM.

  sample.py OUT.csv api=PID worker=PID [--pg ADMIN_URL DBNAME] [--pidfile NAME=PATH]

Writes `epoch,name,cpu_pct,rss_kb,fds` rows. cpu_pct is the process's CPU time (user +
system) over the last interval as a percentage of ONE core (200 = both cores of a 2-core
box); lib/report.py also shows it as a share of the machine. Two more rows per second:
`machine` (all CPUs busy, from /proc/stat; rss = used memory) and, with --pg, `postgres`
(the sum over the PostgreSQL backends connected to DBNAME, refreshed every 5 s; rss is
their summed RSS, which counts shared buffers more than once). With --pidfile, NAME is
the process whose pid PATH holds at each sample (the current load generator), if any.
"""

import os
import signal
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
stop = False


def on_term(*_):
    global stop
    stop = True


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def mem_used_kb():
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            info[k] = int(v.split()[0])
    return info["MemTotal"] - info.get("MemAvailable", info["MemFree"])


def pg_backends(url, db):
    try:
        out = subprocess.run(
            ["psql", url, "-AtX", "-c",
             f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"],
            capture_output=True, text=True, timeout=5,
        ).stdout
        return [p for p in out.split() if p.isdigit()]
    except (OSError, subprocess.SubprocessError):
        return []


def main():
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    args = sys.argv[2:]
    pg = None
    if "--pg" in args:
        i = args.index("--pg")
        pg = (args[i + 1], args[i + 2])
        args = args[:i] + args[i + 3:]
    pidfile = None
    if "--pidfile" in args:
        i = args.index("--pidfile")
        pidfile = args[i + 1].split("=", 1)
        args = args[:i] + args[i + 2:]
    pf_pid, pf_last = None, 0
    out = open(sys.argv[1], "a", buffering=1)
    procs = [a.split("=", 1) for a in args]
    last = {}
    t_last = time.monotonic()
    for name, pid in procs:
        try:
            last[name] = cpu_ticks(pid)
        except OSError:
            last[name] = 0
    busy_last, total_last = machine_busy()
    pg_pids, pg_last, pg_refresh = [], {}, 0.0
    while not stop:
        time.sleep(1.0)
        now = time.monotonic()
        dt = now - t_last
        t_last = now
        busy, total = machine_busy()
        if total > total_last:
            cores = os.cpu_count() or 1
            pct = (busy - busy_last) / (total - total_last) * 100.0 * cores
            out.write(f"{time.time():.3f},machine,{pct:.1f},{mem_used_kb()},0\n")
        busy_last, total_last = busy, total
        if pidfile:
            try:
                pid = open(pidfile[1]).read().strip()
            except OSError:
                pid = ""
            if pid.isdigit():
                try:
                    ticks, rss = cpu_ticks(pid), rss_kb(pid)
                    if pid == pf_pid:
                        cpu = (ticks - pf_last) / TICKS / dt * 100.0
                        out.write(f"{time.time():.3f},{pidfile[0]},{cpu:.1f},{rss},{fds(pid)}\n")
                    pf_pid, pf_last = pid, ticks
                except (OSError, IndexError, ValueError):
                    pf_pid = None
        if pg:
            if now >= pg_refresh:
                pg_pids = pg_backends(*pg)
                pg_refresh = now + 5.0
            ticks_now, rss_sum, cpu_sum = {}, 0, 0.0
            for pid in pg_pids:
                try:
                    ticks_now[pid] = cpu_ticks(pid)
                    rss_sum += rss_kb(pid)
                except (OSError, IndexError, ValueError):
                    continue
                if pid in pg_last:
                    cpu_sum += (ticks_now[pid] - pg_last[pid]) / TICKS / dt * 100.0
            pg_last = ticks_now
            out.write(f"{time.time():.3f},postgres,{cpu_sum:.1f},{rss_sum},{len(ticks_now)}\n")
        for name, pid in procs:
            try:
                ticks = cpu_ticks(pid)
                rss = rss_kb(pid)
            except (OSError, IndexError, ValueError):
                continue
            cpu = (ticks - last[name]) / TICKS / dt * 100.0
            last[name] = ticks
            out.write(f"{time.time():.3f},{name},{cpu:.1f},{rss},{fds(pid)}\n")


if __name__ == "__main__":
    main()
