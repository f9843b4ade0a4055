#!/usr/bin/env python3
"""Collection cost of prismwatch's PostgreSQL, PgBouncer and Redis collectors beside Debian's
postgres_exporter and redis_exporter, in one run, counting the database server side too.

    python3 benches/datastores_vs_exporters.py --seconds 60     # about 5 minutes

Setup (private, on random loopback ports, in one temp dir removed at exit): PostgreSQL (newest
under /usr/lib/postgresql) with pg_stat_statements, 5 databases of 10 tables, ~250 distinct
statements and a short pgbench; PgBouncer in front of it (our collector reads its admin console);
redis-server with 10,000 keys. As root, initdb, postgres and pgbouncer run as user postgres
(Popen(user=...) rather than runuser, so the pids we hold are the servers' own).

Phases, one after another, never two agents at once, each --seconds long:
 1. idle: no agent; the servers' CPU over it gives their baseline rate.
 2. prismwatch (target/release; host collector off; postgres, pgbouncer and redis collectors at
    1 s, plus its `process` self-collector, which costs microseconds), measured from 5 s after
    /readyz answers 200. Cycles = increase of prismwatch_collector_runs_total{collector=
    "postgres:..."}. Not scraped, unless --scrape-prismwatch (once a second, like the exporters).
 3. postgres_exporter, 4. redis_exporter: scraped by this script once a second after 3 warm-up
    scrapes; a scrape is one collection; cycles = scrapes in the window.

Costs per cycle:
 - agent CPU: utime+stime of the agent process (/proc/PID/stat, clock ticks).
 - server CPU: utime+stime of the postmaster and all its descendants (re-listed at each reading)
   plus the postmaster's cutime+cstime, where reaped backends keep counting; of pgbouncer; of
   redis-server. Minus the idle rate times the window length, so it can come out slightly < 0.
 - bytes: bytes_sent + bytes_received of the agent's TCP sockets to the server ports, from
   `ss -tinpH` at both ends of the window plus the final counters of sockets destroyed inside it,
   caught by `ss -E` (redis_exporter connects anew on every scrape; the others keep persistent
   connections). A socket opened inside the window counts from 0.
 - round trips ~ data_segs_out of those sockets: the agent writes a request, then waits for the
   answer, and a request fits one loopback segment (MSS 32-64 KiB). It over-counts a request
   written in several pieces and under-counts pipelined requests sent in one write.
Resolution: CPU counters tick at 1/SC_CLK_TCK s (10 ms): 10/--seconds ms per cycle at one cycle
a second (0.17 ms with 60 s); the baseline subtraction adds the servers' idle noise.
Debian ships no pgbouncer_exporter: the PgBouncer collector's cost counts on our side only, which
makes our side look worse, not better. Target from the issue: ours at most one fifth.
"""

import argparse
import glob
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "prismwatch")
PG_EXPORTER = "/usr/bin/prometheus-postgres-exporter"
REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter"
PGBOUNCER = "/usr/sbin/pgbouncer"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DATABASES = ["bench", "app1", "app2", "app3", "app4"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what, timeout=30):
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def tcp_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def http_get(port, path, conn=None):
    """GET a path; returns (status, body), (0, "") when nothing answers. Reuses conn if given."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    except OSError:
        return 0, ""
    finally:
        if conn is None:
            c.close()


def pg_dsn(port, db):
    return f"postgres://postgres@127.0.0.1:{port}/{db}?sslmode=disable"


def tree_cpu(root):
    """CPU seconds of root, its live descendants, and the children it reaped (cutime+cstime)."""
    stats, children = {}, {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                stats[int(path.split("/")[2])] = f.read().rsplit(")", 1)[1].split()
        except OSError:
            pass  # exited meanwhile
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    ticks, todo = sum(int(x) for x in stats[root][11:15]), list(children.get(root, []))
    while todo:
        pid = todo.pop()
        ticks += int(stats[pid][11]) + int(stats[pid][12])
        todo.extend(children.get(pid, []))
    return ticks / CLK_TCK


def parse_ss(text, ports):
    """[(key, line, counters)] of the TCP sockets in `ss -tin` output whose peer port is in ports."""
    found = []
    for line in text.splitlines():
        if line and not line[0].isspace():
            cols = line.split()
            peer = cols[4].rsplit(":", 1)[-1] if len(cols) > 4 else ""
            found.append(((cols[3], cols[4]), line, {}) if peer.isdigit() and int(peer) in ports else None)
        elif found and found[-1]:
            found[-1][2].update((k, int(v)) for k, v in re.findall(
                r"\b(bytes_sent|bytes_received|data_segs_out):(\d+)", line))
    return [f for f in found if f]


def snapshot(ports):
    return parse_ss(subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=True).stdout, ports)


def traffic(agent, start, end, destroyed):
    """Per server port: bytes exchanged and data segments sent by the agent over the window.

    The agent's sockets open at the end count from their start values (0 if new); sockets
    destroyed inside the window (`ss -E` shows no owner) count unless another process owned them
    at either end, since only the agent talks to the servers meanwhile."""
    mark = f"pid={agent},"
    before = {key: c for key, line, c in start if mark in line}
    foreign = {key for key, line, _ in start + end if mark not in line}
    mine = [(key, c) for key, line, c in end if mark in line]
    mine += [(key, c) for key, _, c in destroyed if key not in foreign]
    totals = {}
    for key, c in mine:
        b = before.get(key, {})
        t = totals.setdefault(int(key[1].rsplit(":", 1)[1]), {"bytes": 0, "segs": 0})
        t["bytes"] += sum(c.get(f, 0) - b.get(f, 0) for f in ("bytes_sent", "bytes_received"))
        t["segs"] += c.get("data_segs_out", 0) - b.get("data_segs_out", 0)
    return totals


class Lab:
    """The temp dir and every process this script started; close() stops them and cleans up."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="pw-datastores-")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.tmp, "postgres", "postgres")
        self.procs = []

    def _user(self, as_postgres):
        return dict(user="postgres", group="postgres", extra_groups=[]) if as_postgres and self.as_root else {}

    def run(self, argv, as_postgres=False, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        return subprocess.run(argv, cwd=self.tmp, check=True, **self._user(as_postgres), **kw)

    def spawn(self, argv, log, as_postgres=False, env=None, stop=signal.SIGTERM):
        with open(os.path.join(self.tmp, log), "ab") as out:
            p = subprocess.Popen(argv, cwd=self.tmp, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, **self._user(as_postgres))
        p.stop_signal = stop
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p):
        if p.poll() is None:
            p.send_signal(p.stop_signal)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self):
        for p in reversed(self.procs):
            self.stop(p)
        shutil.rmtree(self.tmp, ignore_errors=True)


def workload_sql():
    """10 tables, 5 statement shapes each: ~50 distinct pg_stat_statements entries per database."""
    sql = []
    for i in range(10):
        sql += [f"CREATE TABLE t{i} (id serial PRIMARY KEY, v text, n int);",
                f"INSERT INTO t{i} (v, n) SELECT md5(g::text), g FROM generate_series(1, 1000) g;",
                f"SELECT count(*) FROM t{i} WHERE n > 500;",
                f"UPDATE t{i} SET n = n + 1 WHERE id = 7;",
                f"DELETE FROM t{i} WHERE id = 9;"]
    return "\n".join(sql + ["VACUUM ANALYZE;"]).encode()


def start_postgres(lab):
    bindir = max(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    port, data = free_port(), os.path.join(lab.tmp, "data")
    lab.run([f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"], as_postgres=True)
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{lab.tmp}'\n"
                "shared_preload_libraries = 'pg_stat_statements'\nfsync = off\n")
    pg = lab.spawn([f"{bindir}/postgres", "-D", data], "postgres.log", as_postgres=True, stop=signal.SIGINT)
    client = ["-h", lab.tmp, "-p", str(port), "-U", "postgres"]
    wait_until(lambda: pg.poll() is None and subprocess.run(
        [f"{bindir}/pg_isready", *client], stdout=subprocess.DEVNULL).returncode == 0, "PostgreSQL")
    psql = [f"{bindir}/psql", *client, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    lab.run(psql + ["-d", "postgres", "-c", "CREATE EXTENSION pg_stat_statements"])
    for db in DATABASES:
        lab.run(psql + ["-d", "postgres", "-c", f"CREATE DATABASE {db}"])
        lab.run(psql + ["-d", db], input=workload_sql())
    lab.run([f"{bindir}/pgbench", *client, "-i", "-s", "1", "-q", "bench"], stderr=subprocess.DEVNULL)
    lab.run([f"{bindir}/pgbench", *client, "-T", "5", "-c", "2", "bench"], stderr=subprocess.DEVNULL)
    lab.run(psql + ["-d", "bench", "-c", "VACUUM ANALYZE"])
    lab.run(psql + ["-d", "postgres", "-c", "CHECKPOINT"])
    entries = lab.run(psql + ["-d", "postgres", "-At", "-c", "SELECT count(*) FROM pg_stat_statements"],
                      stdout=subprocess.PIPE).stdout.decode().strip()
    return pg, port, bindir, entries


def start_pgbouncer(lab, pg_port, bindir):
    port, auth, ini = free_port(), os.path.join(lab.tmp, "userlist.txt"), os.path.join(lab.tmp, "pgbouncer.ini")
    with open(auth, "w") as f:
        f.write('"postgres" ""\n')
    with open(ini, "w") as f:
        f.write(f"[databases]\n* = host=127.0.0.1 port={pg_port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
                f"listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {auth}\n"
                "admin_users = postgres\npool_mode = transaction\n"
                f"ignore_startup_parameters = extra_float_digits\nlogfile = {lab.tmp}/pgbouncer.log\n")
    bouncer = lab.spawn([PGBOUNCER, ini], "pgbouncer.out", as_postgres=True)
    wait_until(lambda: bouncer.poll() is None and tcp_open(port), "PgBouncer")
    for db in DATABASES[:3]:  # a few pools, each with an idle server connection
        lab.run([f"{bindir}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db,
                 "-X", "-q", "-c", "SELECT count(*) FROM t1"])
    return bouncer, port


def start_redis(lab):
    port = free_port()
    redis = lab.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", lab.tmp], "redis.log")
    wait_until(lambda: redis.poll() is None and tcp_open(port), "redis-server")

    def resp(*args):
        return f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args)
    payload = b"".join(resp("SET", f"key:{i}", f"value-{i:06d}-{'x' * 24}") for i in range(10000))
    lab.run(["redis-cli", "-p", str(port), "--pipe"], input=payload)
    return redis, port


def runs_total(port, collector):
    """(all runs, failed runs) of prismwatch_collector_runs_total for one collector."""
    total = bad = 0.0
    for line in http_get(port, "/metrics")[1].splitlines():
        if line.startswith("prismwatch_collector_runs_total{") and f'collector="{collector}"' in line:
            value = float(line.rsplit(" ", 1)[1])
            total += value
            bad += 0 if 'result="success"' in line else value
    return total, bad


def window(lab, seconds, servers, agent=None, ports=(), cycles=None, scrape=None):
    """Measures one phase. scrape(): called once a second; cycles(): a counter read at both ends."""
    if agent:  # sockets destroyed inside the window show only in `ss -E`; line-buffered, so it
        # loses nothing to SIGKILL (on SIGTERM it waits for one more event before it exits)
        events = f"ss-events-{agent}.log"
        watch = lab.spawn(["stdbuf", "-oL", "ss", "-E", "-tinH"], events, stop=signal.SIGKILL)
        time.sleep(0.5)
    c0 = cycles() if cycles else 0
    s0 = snapshot(ports) if agent else []
    a0 = tree_cpu(agent) if agent else 0.0
    v0 = {name: tree_cpu(pid) for name, pid in servers.items()}
    t0, scrapes = time.monotonic(), 0
    while time.monotonic() < t0 + seconds:
        if scrape and scrapes < seconds:
            scrape()
            scrapes += 1
        time.sleep(max(0.0, t0 + (min(scrapes, seconds) if scrape else seconds) - time.monotonic()))
    elapsed = time.monotonic() - t0
    v1 = {name: tree_cpu(pid) for name, pid in servers.items()}
    a1 = tree_cpu(agent) if agent else 0.0
    s1 = snapshot(ports) if agent else []
    m = {"elapsed": elapsed, "agent": a1 - a0, "server": {k: v1[k] - v0[k] for k in servers},
         "cycles": (cycles() - c0) if cycles else scrapes, "traffic": {}}
    if agent:
        time.sleep(0.2)
        lab.stop(watch)
        with open(os.path.join(lab.tmp, events)) as f:
            m["traffic"] = traffic(agent, s0, s1, parse_ss(f.read(), ports))
    return m


def scraper(port):
    """A function doing one GET /metrics on a keep-alive connection, as Prometheus does."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def scrape():
        if http_get(port, "/metrics", conn)[0] != 200:
            raise RuntimeError(f"scrape of port {port} failed")
    return scrape


def phase_prismwatch(lab, args, ports, servers):
    """Runs the daemon with the three collectors at 1 s and measures one window."""
    config, port = os.path.join(lab.tmp, "prismwatch.toml"), free_port()
    with open(config, "w") as f:
        f.write(f'[host]\nenabled = false\n[[postgres]]\ndsn = "{pg_dsn(ports["postgres"], "postgres")}"\n'
                f'interval = "1s"\n[[pgbouncer]]\ndsn = "{pg_dsn(ports["pgbouncer"], "pgbouncer")}"\n'
                f'interval = "1s"\n[[redis]]\nurl = "redis://127.0.0.1:{ports["redis"]}"\ninterval = "1s"\n')
    pw = lab.spawn([BINARY, "--config", config, "--listen", f"127.0.0.1:{port}", "--state-dir",
                    os.path.join(lab.tmp, "state"), "--log-level", "warn"], "prismwatch.log")
    wait_until(lambda: pw.poll() is None and http_get(port, "/readyz")[0] == 200, "prismwatch /readyz")
    time.sleep(5)
    names = {name: f"{name}:127.0.0.1:{p}" for name, p in ports.items()}
    before = {n: runs_total(port, c) for n, c in names.items()}
    m = window(lab, args.seconds, servers, pw.pid, set(ports.values()),
               cycles=lambda: runs_total(port, names["postgres"])[0],
               scrape=scraper(port) if args.scrape_prismwatch else None)
    after = {n: runs_total(port, c) for n, c in names.items()}
    lab.stop(pw)
    m["runs"] = {n: after[n][0] - before[n][0] for n in names}
    if len(set(m["runs"].values())) > 1 or any(after[n][1] for n in names):
        print(f"note: collector runs differ or failed: {m['runs']}, failures {[after[n][1] for n in names]}")
    return m


def phase_exporter(lab, args, argv, env, server, ports, servers):
    """Runs one exporter, warms it up, then scrapes it once a second over one window."""
    port = free_port()
    proc = lab.spawn([a.format(port=port) for a in argv], os.path.basename(argv[0]) + ".log", env=env)
    wait_until(lambda: proc.poll() is None and http_get(port, "/metrics")[0] == 200, argv[0], timeout=60)
    scrape = scraper(port)
    for _ in range(3):  # connections open, first-scrape work done
        scrape()
        time.sleep(1)
    m = window(lab, args.seconds, {server: servers[server]}, proc.pid, {ports[server]}, scrape=scrape)
    lab.stop(proc)
    return m


def per_cycle(m, baseline, ports):
    """{server: (server CPU ms, bytes, data segments out)} per cycle, server CPU net of idle."""
    out = {}
    for name in m["server"]:
        net = m["server"][name] - baseline[name] * m["elapsed"]
        t = m["traffic"].get(ports[name], {"bytes": 0, "segs": 0})
        out[name] = (net * 1e3 / m["cycles"], t["bytes"] / m["cycles"], t["segs"] / m["cycles"])
    return out


def row(label, agent_ms, parts):
    """Prints one table row; returns (total CPU, server CPU, bytes, segments) per cycle."""
    server, nbytes, segs = (sum(p[i] for p in parts) for i in range(3))
    cells = (f"{agent_ms:10.3f}", f"{agent_ms + server:10.3f}") if agent_ms is not None else (f"{'-':>10}",) * 2
    print(f"{label:34} {cells[0]} {server:10.3f} {cells[1]} {nbytes:10.0f} {segs:8.1f}")
    return (agent_ms or 0) + server, server, nbytes, segs


def report(args, baseline, ours, pg_exp, redis_exp, ports):
    n = ours["cycles"]
    parts = per_cycle(ours, baseline, ports)
    print(f"\ncycles: prismwatch {n:.0f} ({', '.join(f'{k} {v:.0f}' for k, v in ours['runs'].items())}), "
          f"exporters {pg_exp['cycles']} and {redis_exp['cycles']} scrapes; idle server CPU (ms/s): "
          + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in baseline.items()))
    print(f"CPU resolution: {1e3 / CLK_TCK:.0f} ms ticks / {n:.0f} cycles = "
          f"{1e3 / CLK_TCK / max(n, 1):.2f} ms per cycle\n")
    print(f"{'per cycle':34} {'agent ms':>10} {'server ms':>10} {'total ms':>10} {'bytes':>10} {'segs out':>8}")
    mine = row("prismwatch round (pg+pgb+redis)", ours["agent"] * 1e3 / n, list(parts.values()))
    for name in ports:
        row(f"  {name} side", None, [parts[name]])
    pe, rd = (per_cycle(m, baseline, ports) for m in (pg_exp, redis_exp))
    pe_agent, rd_agent = (m["agent"] * 1e3 / m["cycles"] for m in (pg_exp, redis_exp))
    row("postgres_exporter scrape", pe_agent, [pe["postgres"]])
    row("redis_exporter scrape", rd_agent, [rd["redis"]])
    theirs = row("exporters total (pg + redis)", pe_agent + rd_agent, [pe["postgres"], rd["redis"]])
    print()
    for i, label in enumerate(("total CPU", "server CPU", "bytes", "data segments out")):
        ratio = f"{mine[i] / theirs[i]:7.3f}" if theirs[i] > 0 else "    n/a"
        print(f"ratio ours/exporters, {label + ':':19} {ratio}")
    met = theirs[0] > 0 and mine[0] / theirs[0] <= 0.2
    print(f"target: total CPU ratio <= 0.200 (one fifth): {'met' if met else 'NOT met'}")
    print("notes: Debian has no pgbouncer_exporter, so the PgBouncer collector counts on our side only; "
          "prismwatch's agent CPU includes its `process` self-collector; prismwatch was "
          + ("scraped once a second." if args.scrape_prismwatch else "not scraped."))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of each of the 4 phases")
    parser.add_argument("--scrape-prismwatch", action="store_true", help="also scrape prismwatch once a second")
    args = parser.parse_args()
    for tool in (BINARY, PG_EXPORTER, REDIS_EXPORTER, PGBOUNCER, "redis-server", "redis-cli", "ss", "stdbuf"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool} (prismwatch: cargo build --release; ss: iproute2; others: their Debian packages)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lab = Lab()
    try:
        print("setting up PostgreSQL, PgBouncer and Redis ...", flush=True)
        pg, pg_port, bindir, entries = start_postgres(lab)
        bouncer, pgb_port = start_pgbouncer(lab, pg_port, bindir)
        redis, redis_port = start_redis(lab)
        servers = {"postgres": pg.pid, "pgbouncer": bouncer.pid, "redis": redis.pid}
        ports = {"postgres": pg_port, "pgbouncer": pgb_port, "redis": redis_port}
        print(f"{len(DATABASES)} databases, {entries} pg_stat_statements entries, 10000 Redis keys; "
              f"phases of {args.seconds:.0f} s", flush=True)
        time.sleep(5)
        print("1/4 idle baseline ...", flush=True)
        idle = window(lab, args.seconds, servers)
        baseline = {k: v / idle["elapsed"] for k, v in idle["server"].items()}
        print("2/4 prismwatch ...", flush=True)
        ours = phase_prismwatch(lab, args, ports, servers)
        print("3/4 postgres_exporter ...", flush=True)
        pg_exp = phase_exporter(lab, args, [PG_EXPORTER, "--web.listen-address=127.0.0.1:{port}"],
                                dict(os.environ, DATA_SOURCE_NAME=pg_dsn(pg_port, "postgres")),
                                "postgres", ports, servers)
        print("4/4 redis_exporter ...", flush=True)
        redis_exp = phase_exporter(lab, args, [REDIS_EXPORTER, "-web.listen-address", "127.0.0.1:{port}",
                                               "-redis.addr", f"redis://127.0.0.1:{redis_port}"],
                                   None, "redis", ports, servers)
        report(args, baseline, ours, pg_exp, redis_exp, ports)
    finally:
        lab.close()


if __name__ == "__main__":
    main()
