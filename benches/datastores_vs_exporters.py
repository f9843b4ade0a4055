#!/usr/bin/env python3
"""Collection cost of prismwatch's PostgreSQL, PgBouncer and Redis collectors beside Debian's
postgres_exporter and redis_exporter, in one run, counting the database server side too.

    python3 benches/datastores_vs_exporters.py --seconds 60     # about 5 minutes

Setup (all private, on random loopback ports, in one temp dir removed at exit): PostgreSQL (the
newest version under /usr/lib/postgresql) with pg_stat_statements loaded, 5 databases with 10
tables each, ~250 distinct statements and a short pgbench run; PgBouncer in front of it (admin
console for our collector); redis-server with 10,000 keys. As root, initdb, postgres and
pgbouncer run as user postgres (dropped with Popen(user=...), so the pids are the servers').

Phases, one after another, never two agents at once, each --seconds long:
 1. idle: no agent; the servers' CPU over the phase is the baseline rate.
 2. prismwatch (target/release, host collector off, postgres + pgbouncer + redis collectors at a
    1 s interval, plus its `process` self-collector, which costs microseconds): measured from 5 s
    after /readyz answers 200. Cycles = increase of prismwatch_collector_runs_total for the
    postgres collector. Nothing scrapes it unless --scrape-prismwatch (then once a second, so the
    agent cost includes serving /metrics as the exporters' does).
 3. postgres_exporter, 4. redis_exporter: this script scrapes /metrics once a second, after
    warm-up scrapes; one scrape is one collection; cycles = scrapes in the window.

Costs per cycle:
 - agent CPU: utime+stime of the agent process (/proc/PID/stat, clock ticks).
 - server CPU: utime+stime of the postmaster and all its descendants, re-listed at each reading,
   plus the postmaster's cutime+cstime (backends that exited and were reaped keep counting there),
   of the pgbouncer process and of redis-server; minus the idle rate times the window length.
 - bytes: bytes_sent + bytes_received of the agent's TCP sockets to the server ports: `ss -tinpH`
   at the start and end of the window, plus the final counters of sockets destroyed inside it,
   caught by `ss -E` (redis_exporter opens and closes a connection per scrape; the others keep
   persistent ones). A socket opened inside the window counts from 0.
 - round trips ~ data_segs_out of those sockets: the agent writes a request and waits for the
   answer, and a request fits one loopback segment (MSS 32-64 KiB). This over-counts a request
   sent in several writes and under-counts pipelined requests sent in one write.
Resolution: CPU counters tick at 1/SC_CLK_TCK s (10 ms), i.e. 10/--seconds ms per cycle at one
cycle a second (0.17 ms with 60 s); the baseline subtraction adds the servers' idle noise.
Debian ships no pgbouncer_exporter: our PgBouncer collector's cost counts on our side only, which
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
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def tcp_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def http_get(port, path, conn=None):
    """GET a path; returns (status, body). Reuses conn (keep-alive) when given."""
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


def tree_cpu(root):
    """CPU seconds of root, its live descendants, and the children it reaped (cutime+cstime)."""
    stats = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                stats[int(path.split("/")[2])] = f.read().rsplit(")", 1)[1].split()
        except OSError:
            pass  # exited meanwhile
    children = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    ticks = sum(int(x) for x in stats[root][11:15])
    todo = list(children.get(root, []))
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

    Sockets of the agent open at the end count from their start values (0 if opened inside the
    window); sockets destroyed inside the window (`ss -E`, no owner shown) count unless another
    process owned them at either end, since only the agent talks to the servers meanwhile."""
    before = {key: c for key, line, c in start if f"pid={agent}," in line}
    foreign = {key for key, line, _ in start + end if f"pid={agent}," not in line}
    mine = [(key, c) for key, line, c in end if f"pid={agent}," in line]
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
        self.procs.append((p, stop))
        return p

    def stop(self, p):
        for q, sig in self.procs:
            if q is p and p.poll() is None:
                p.send_signal(sig)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def close(self):
        for p, _ in reversed(self.procs):
            self.stop(p)
        shutil.rmtree(self.tmp, ignore_errors=True)


def workload_sql():
    """10 tables and 5 statement shapes per table: ~50 distinct pg_stat_statements entries per db."""
    sql = []
    for i in range(10):
        sql += [f"CREATE TABLE t{i} (id serial PRIMARY KEY, v text, n int);",
                f"INSERT INTO t{i} (v, n) SELECT md5(g::text), g FROM generate_series(1, 1000) g;",
                f"SELECT count(*) FROM t{i} WHERE n > 500;",
                f"UPDATE t{i} SET n = n + 1 WHERE id = 7;",
                f"DELETE FROM t{i} WHERE id = 9;"]
    return "\n".join(sql + ["VACUUM ANALYZE;"])


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
        lab.run(psql + ["-d", db], input=workload_sql().encode())
    lab.run([f"{bindir}/pgbench", *client, "-i", "-s", "1", "-q", "bench"], stderr=subprocess.DEVNULL)
    lab.run([f"{bindir}/pgbench", *client, "-T", "5", "-c", "2", "bench"], stderr=subprocess.DEVNULL)
    lab.run(psql + ["-d", "bench", "-c", "VACUUM ANALYZE"])
    lab.run(psql + ["-d", "postgres", "-c", "CHECKPOINT"])
    entries = lab.run(psql + ["-d", "postgres", "-At", "-c", "SELECT count(*) FROM pg_stat_statements"],
                      stdout=subprocess.PIPE).stdout.decode().strip()
    return pg, port, bindir, entries


def start_pgbouncer(lab, pg_port, bindir):
    port, auth = free_port(), os.path.join(lab.tmp, "userlist.txt")
    with open(auth, "w") as f:
        f.write('"postgres" ""\n')
    ini = os.path.join(lab.tmp, "pgbouncer.ini")
    with open(ini, "w") as f:
        f.write(f"[databases]\n* = host=127.0.0.1 port={pg_port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
                f"listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {auth}\n"
                "admin_users = postgres\npool_mode = transaction\n"
                f"ignore_startup_parameters = extra_float_digits\nlogfile = {lab.tmp}/pgbouncer.log\n")
    bouncer = lab.spawn([PGBOUNCER, ini], "pgbouncer.out", as_postgres=True)
    wait_until(lambda: bouncer.poll() is None and tcp_open(port), "PgBouncer")
    for db in DATABASES[:3]:  # give it some pools with a server connection each
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
    """Sum over results of prismwatch_collector_runs_total for one collector (and any non-success)."""
    text = http_get(port, "/metrics")[1]
    total = bad = 0.0
    for line in text.splitlines():
        if line.startswith("prismwatch_collector_runs_total{") and f'collector="{collector}"' in line:
            value = float(line.rsplit(" ", 1)[1])
            total += value
            bad += 0 if 'result="success"' in line else value
    return total, bad


def window(lab, seconds, servers, agent=None, ports=(), cycles=None, scrape=None):
    """Measures one phase. scrape(): called once a second; cycles(): a counter read at both ends."""
    if agent:  # sockets destroyed inside the window are reported only by `ss -E`, line-buffered
        events = f"ss-events-{agent}.log"
        watch = lab.spawn(["stdbuf", "-oL", "ss", "-E", "-tinH"], events)
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
    n = (cycles() - c0) if cycles else scrapes
    net = {}
    if agent:
        time.sleep(0.2)
        lab.stop(watch)
        with open(os.path.join(lab.tmp, events)) as f:
            net = traffic(agent, s0, s1, parse_ss(f.read(), ports))
    return {"elapsed": elapsed, "agent": a1 - a0, "server": {k: v1[k] - v0[k] for k in servers},
            "traffic": net, "cycles": n}


def scraper(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def scrape():
        status, body = http_get(port, "/metrics", conn)
        if status != 200 or not body:
            raise RuntimeError(f"scrape of port {port} failed ({status})")
    return scrape


def per_cycle(m, baseline, server_ports):
    """{server: (server CPU ms, bytes, segs)} per cycle, the server CPU net of the idle baseline."""
    out = {}
    for name, port in server_ports.items():
        net = m["server"][name] - baseline[name] * m["elapsed"]
        t = m["traffic"].get(port, {"bytes": 0, "segs": 0})
        out[name] = (net * 1e3 / m["cycles"], t["bytes"] / m["cycles"], t["segs"] / m["cycles"])
    return out


def row(label, agent, parts):
    server = sum(p[0] for p in parts)
    total = f"{agent + server:10.3f}" if agent is not None else f"{'-':>10}"
    agent_s = f"{agent:10.3f}" if agent is not None else f"{'-':>10}"
    print(f"{label:34} {agent_s} {server:10.3f} {total} {sum(p[1] for p in parts):10.0f} "
          f"{sum(p[2] for p in parts):8.1f}")
    return (agent or 0) + server, server, sum(p[1] for p in parts), sum(p[2] for p in parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of each of the 4 phases")
    parser.add_argument("--scrape-prismwatch", action="store_true", help="scrape prismwatch once a second too")
    args = parser.parse_args()
    for path, hint in ((BINARY, "build it: cargo build --release"), (PG_EXPORTER, "apt-get install prometheus-postgres-exporter"),
                       (REDIS_EXPORTER, "apt-get install prometheus-redis-exporter"), (PGBOUNCER, "apt-get install pgbouncer"),
                       (shutil.which("ss") or "ss", "apt-get install iproute2"), (shutil.which("stdbuf") or "stdbuf", "coreutils"), (shutil.which("redis-server") or "redis-server", "apt-get install redis-server")):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: {hint}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lab = Lab()
    try:
        print("setting up PostgreSQL, PgBouncer and Redis ...", flush=True)
        pg, pg_port, bindir, entries = start_postgres(lab)
        bouncer, pgb_port = start_pgbouncer(lab, pg_port, bindir)
        redis, redis_port = start_redis(lab)
        servers = {"postgres": pg.pid, "pgbouncer": bouncer.pid, "redis": redis.pid}
        ports = {"postgres": pg_port, "pgbouncer": pgb_port, "redis": redis_port}
        pg_dsn = f"postgres://postgres@127.0.0.1:{pg_port}/postgres?sslmode=disable"
        print(f"{len(DATABASES)} databases, {entries} pg_stat_statements entries, 10000 Redis keys; "
              f"phases of {args.seconds:.0f} s", flush=True)
        time.sleep(5)

        print("1/4 idle baseline ...", flush=True)
        idle = window(lab, args.seconds, servers)
        baseline = {k: v / idle["elapsed"] for k, v in idle["server"].items()}

        print("2/4 prismwatch ...", flush=True)
        config, pw_port = os.path.join(lab.tmp, "prismwatch.toml"), free_port()
        with open(config, "w") as f:
            f.write(f'[host]\nenabled = false\n[[postgres]]\ndsn = "{pg_dsn}"\ninterval = "1s"\n'
                    f'[[pgbouncer]]\ndsn = "postgres://postgres@127.0.0.1:{pgb_port}/pgbouncer?sslmode=disable"\n'
                    f'interval = "1s"\n[[redis]]\nurl = "redis://127.0.0.1:{redis_port}"\ninterval = "1s"\n')
        pw = lab.spawn([BINARY, "--config", config, "--listen", f"127.0.0.1:{pw_port}", "--state-dir",
                        os.path.join(lab.tmp, "state"), "--log-level", "warn"], "prismwatch.log")
        wait_until(lambda: pw.poll() is None and http_get(pw_port, "/readyz")[0] == 200, "prismwatch /readyz")
        time.sleep(5)
        collectors = {name: f"{name}:127.0.0.1:{port}" for name, port in ports.items()}
        before = {n: runs_total(pw_port, c) for n, c in collectors.items()}
        ours = window(lab, args.seconds, servers, pw.pid, set(ports.values()),
                      cycles=lambda: runs_total(pw_port, collectors["postgres"])[0],
                      scrape=scraper(pw_port) if args.scrape_prismwatch else None)
        after = {n: runs_total(pw_port, c) for n, c in collectors.items()}
        lab.stop(pw)
        runs = {n: after[n][0] - before[n][0] for n in collectors}
        if len(set(runs.values())) > 1 or any(after[n][1] for n in collectors):
            print(f"note: collector runs differ or failed: {runs}, failures {[after[n][1] for n in collectors]}")

        print("3/4 postgres_exporter ...", flush=True)
        exporters = {}
        for name, argv, env, server in (
                ("postgres_exporter", [PG_EXPORTER, "--web.listen-address=127.0.0.1:{port}"],
                 dict(os.environ, DATA_SOURCE_NAME=pg_dsn), "postgres"),
                ("redis_exporter", [REDIS_EXPORTER, "-web.listen-address", "127.0.0.1:{port}", "-redis.addr",
                                    f"redis://127.0.0.1:{redis_port}"], None, "redis")):
            if name == "redis_exporter":
                print("4/4 redis_exporter ...", flush=True)
            port = free_port()
            proc = lab.spawn([a.format(port=port) for a in argv], f"{name}.log", env=env)
            wait_until(lambda: proc.poll() is None and http_get(port, "/metrics")[0] == 200, name, timeout=60)
            scrape = scraper(port)
            for _ in range(3):  # warm-up: connections open, first-scrape work done
                scrape()
                time.sleep(1)
            m = window(lab, args.seconds, {server: servers[server]}, proc.pid, {ports[server]}, scrape=scrape)
            lab.stop(proc)
            exporters[name] = (m["agent"] * 1e3 / m["cycles"], per_cycle(m, baseline, {server: ports[server]})[server])

        n = ours["cycles"]
        parts = per_cycle(ours, baseline, ports)
        print()
        print(f"cycles: prismwatch {n:.0f} ({', '.join(f'{k} {v:.0f}' for k, v in runs.items())}), exporters "
              f"{args.seconds:.0f} scrapes each; idle server CPU (ms/s): "
              + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in baseline.items()))
        print(f"CPU resolution: {1e3 / CLK_TCK:.0f} ms ticks / {n:.0f} cycles = {1e3 / CLK_TCK / max(n, 1):.2f} ms per cycle")
        print()
        print(f"{'per cycle':34} {'agent ms':>10} {'server ms':>10} {'total ms':>10} {'bytes':>10} {'segs out':>8}")
        ours_total = row("prismwatch round (pg+pgb+redis)", ours["agent"] * 1e3 / n, list(parts.values()))
        for name in ports:
            row(f"  {name} side", None, [parts[name]])
        pe, re_ = exporters["postgres_exporter"], exporters["redis_exporter"]
        row("postgres_exporter scrape", pe[0], [pe[1]])
        row("redis_exporter scrape", re_[0], [re_[1]])
        theirs = row("exporters total (pg + redis)", pe[0] + re_[0], [pe[1], re_[1]])
        print()
        for label, i in (("total CPU", 0), ("server CPU", 1), ("bytes", 2), ("data segments out", 3)):
            print(f"ratio ours/exporters, {label + ':':19} {ours_total[i] / theirs[i]:7.3f}" if theirs[i] > 0
                  else f"ratio ours/exporters, {label}: n/a (exporters at 0)")
        verdict = "met" if theirs[0] > 0 and ours_total[0] / theirs[0] <= 0.2 else "NOT met"
        print(f"target total CPU ratio <= 0.200 (one fifth): {verdict}")
        print("notes: Debian has no pgbouncer_exporter, so PgBouncer's cost is on our side only; the agent "
              "CPU of prismwatch includes its `process` self-collector"
              + ("; prismwatch was scraped once a second." if args.scrape_prismwatch else "; prismwatch was not scraped."))
    finally:
        lab.close()


if __name__ == "__main__":
    main()
