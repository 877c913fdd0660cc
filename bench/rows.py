#!/usr/bin/env python3
"""Some rows of bench/compare, against Sluis alone: for A/B runs of two builds, and profiles.

    bench/rows.py [--bin PATH] [--postgres URL] [--codes N] [--logins N] ROW...

ROW: healthz, discovery, jwks, rs256, es256, userinfo, code, code-es256, login (in the order
given; a row may repeat). code-es256 exchanges codes of the ES256 client: its signatures are
so cheap that the row shows what the rest of an exchange costs. Each row runs the same flow
and the same wrk as bench/compare's row, for its duration (`--duration`, 10 s), against the
release binary (`--bin`, default target/release/sluis: build it first, or pass a copy of
another build). Each row prints one line: req/s, p50, p99, failed requests, Sluis' peak RSS,
the KB its SQLite threads wrote per request (WAL, checkpoints; 0 on PostgreSQL), and the CPU
seconds each of Sluis' threads (by name), wrk and (with --postgres) the PostgreSQL server's
processes used during the row.
oidc-provider is not started.
"""
import argparse
import os
import runpy
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("rows", nargs="+", choices=["healthz", "discovery", "jwks", "rs256", "es256", "userinfo", "code", "code-es256", "login"])
parser.add_argument("--bin", help="the sluis binary (default: target/release/sluis)")
parser.add_argument("--postgres", help="run Sluis on a fresh database on this PostgreSQL server (an admin URL)")
parser.add_argument("--codes", type=int, default=36000, help="codes issued beforehand for the code row (default 36000)")
parser.add_argument("--logins", type=int, default=3000, help="sign-in forms fetched beforehand for the login row (default 3000)")
parser.add_argument("--duration", type=int, default=10, help="seconds per row (default 10)")
args = parser.parse_args()

# bench/compare reads its own arguments when loaded: the duration, 32 connections, the database.
sys.argv = [sys.argv[0], str(args.duration), "32"] + (["--postgres", args.postgres] if args.postgres else [])
compare = runpy.run_path(os.path.join(HERE, "compare"), run_name="compare_lib")


def cpu_ticks(pid):
    """CPU ticks per thread name of process `pid` (user + system)."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[name] = ticks.get(name, 0) + int(fields[11]) + int(fields[12])
    return ticks


def written(pid):
    """Bytes the SQLite connection threads of process `pid` have written (WAL, database file,
    checkpoints included); the other threads' writes are mostly to sockets."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm:
                if not comm.read().startswith("sqlx-sqlite"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/io") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
        except FileNotFoundError:
            continue
    return total


def postgres_ticks():
    """CPU ticks of every `postgres` process on the machine (the server's backends, WAL writer,
    autovacuum ...): with --postgres they share the cores with Sluis. Ended processes drop out."""
    ticks = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")] == "postgres":
            fields = stat[stat.rindex(")") + 2:].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def measured(run, pid):
    """Runs `run()` (a wrk call) and adds the CPU seconds used per thread name, by wrk and by
    the PostgreSQL server, and the KB Sluis' SQLite threads wrote per request."""
    hz = os.sysconf("SC_CLK_TCK")
    before, children_before, written_before, pg_before = cpu_ticks(pid), os.times(), written(pid), postgres_ticks()
    result = run()
    after, children_after, pg_after = cpu_ticks(pid), os.times(), postgres_ticks()
    result["written_kb"] = (written(pid) - written_before) / 1024 / max(result["requests"], 1)
    result["cpu_s"] = {name: round((t - before.get(name, 0)) / hz, 2) for name, t in after.items() if t != before.get(name, 0)}
    result["cpu_s"]["wrk"] = round(children_after.children_user + children_after.children_system - children_before.children_user - children_before.children_system, 2)
    if pg_after:
        result["cpu_s"]["postgres"] = round(sum(t - pg_before.get(p, 0) for p, t in pg_after.items()) / hz, 2)
    return result


def main():
    # The build under test also creates the database: two builds may differ in their schema.
    sluis = compare["Sluis"](os.path.abspath(args.bin) if args.bin else None)
    sluis.start()
    pid, wrk, basic = sluis.proc.pid, compare["wrk"], compare["basic"]
    url = lambda path: sluis.issuer + path
    try:
        for row in args.rows:
            # Each row: its path and wrk's arguments (prepared before the measured run).
            if row in ("healthz", "discovery", "jwks"):
                path = {"healthz": "/healthz", "discovery": sluis.paths["discovery"], "jwks": sluis.paths["jwks"]}[row]
                options = {}
            elif row in ("rs256", "es256"):
                path = "/token"
                options = {"script": "post_form.lua", "env": {"BODY": "grant_type=client_credentials", "AUTH": basic(sluis.clients[row.upper()])}}
            elif row == "userinfo":
                path = "/userinfo"
                options = {"script": "bearer.lua", "env": {"TOKEN": compare["userinfo_token"](sluis)}}
            elif row in ("code", "code-es256"):
                alg = "ES256" if row == "code-es256" else "RS256"
                requests = compare["write_requests"]("codes", compare["issue_codes"](sluis, args.codes, alg))
                path = "/token"
                options = {"script": "single_use.lua", "env": {"REQUESTS": requests, "AUTH": basic(sluis.clients[alg]), "EXPECT": "2"}}
            else:  # login
                requests = compare["write_requests"]("logins", compare["login_forms"](sluis, args.logins))
                path = "/"
                options = {"script": "single_use.lua", "env": {"REQUESTS": requests, "EXPECT": "3"}, "timeout": "10s"}
            result = measured(lambda: wrk(url(path), sample=[pid], **options), pid)
            print(f"{row}: {result['rps']:,.0f} req/s, p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms, failed {compare['failures'](result)}, "
                  f"peak RSS {result['peak_rss']:.1f} MB, SQLite wrote {result['written_kb']:.1f} KB per request, CPU s {result['cpu_s']}"
                  + (f", RAN OUT of prepared requests {result['exhausted']} times: pass more (--codes, --logins)" if result["exhausted"] else ""), flush=True)
    finally:
        for proc in compare["PROCS"]:
            proc.terminate()
            proc.wait(10)
        for cleanup in compare["CLEANUP"]:
            cleanup()
        shutil.rmtree(compare["WORK"], ignore_errors=True)


main()
