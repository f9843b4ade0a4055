//! Private, real servers for tests: PostgreSQL (with pg_stat_statements preloaded), PgBouncer in
//! front of it, and Redis, each on a free port in its own temp dir, stopped on drop.
//! PostgreSQL and PgBouncer refuse to run as root, so as root they run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, require_program, run_ok};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A command run as the `postgres` user when we are root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn postgres_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin").join(name))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| panic!("PostgreSQL's `{name}` is not installed: run `apt-get install -y postgresql` (tests/run.sh does this)"))
}

/// A temp dir the `postgres` user can use.
fn shared_temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("prismwatch-test-")
        .tempdir()
        .expect("temp dir");
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
    }
    dir
}

fn signal(pid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Children of `pid` (PostgreSQL's backends and auxiliary processes).
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) else {
        return Vec::new();
    };
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Postgres {
    /// initdb, then start. `password`: when given, TCP connections need it (scram-sha-256) and
    /// it is set for the `postgres` user; otherwise TCP is trusted.
    pub fn start_with(password: Option<&str>, extra_settings: &[&str]) -> Postgres {
        let dir = shared_temp_dir();
        let data = dir.path().join("data");
        let auth = if password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        run_ok(
            as_postgres(&postgres_bin("initdb"))
                .args(["-D"])
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    &format!("--auth-host={auth}"),
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]),
        );
        let port = free_port();
        let mut settings = vec![
            format!("port = {port}"),
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", dir.path().display()),
            "shared_preload_libraries = 'pg_stat_statements'".to_string(),
            "pg_stat_statements.track = 'all'".to_string(),
            "fsync = off".to_string(),
            "max_connections = 30".to_string(),
        ];
        settings.extend(extra_settings.iter().map(|s| s.to_string()));
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&settings.join("\n"));
        text.push('\n');
        std::fs::write(&conf, text).expect("write postgresql.conf");
        let mut server = Postgres {
            dir,
            port,
            child: None,
        };
        server.launch();
        server.psql("postgres", "CREATE EXTENSION pg_stat_statements");
        if let Some(password) = password {
            server.psql(
                "postgres",
                &format!("ALTER USER postgres PASSWORD '{password}'"),
            );
        }
        server
    }

    pub fn start() -> Postgres {
        Postgres::start_with(None, &[])
    }

    /// A streaming replica of `primary` (pg_basebackup -R), with its own port and socket dir.
    pub fn start_replica_of(primary: &Postgres, application_name: &str) -> Postgres {
        let dir = shared_temp_dir();
        let data = dir.path().join("data");
        run_ok(
            as_postgres(&postgres_bin("pg_basebackup"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "-D",
                ])
                .arg(&data),
        );
        let port = free_port();
        // postgresql.auto.conf is read last, so these win over the primary's copied settings
        // and over the primary_conninfo that -R wrote.
        let conf = data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.auto.conf");
        text.push_str(&format!(
            "port = {port}\nunix_socket_directories = '{}'\nprimary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name={application_name}'\n",
            dir.path().display(),
            primary.port
        ));
        std::fs::write(&conf, text).expect("write postgresql.auto.conf");
        let mut replica = Postgres {
            dir,
            port,
            child: None,
        };
        replica.launch();
        replica
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) {
        let log =
            std::fs::File::create(self.dir.path().join(format!("postgres-{}.log", self.port)))
                .expect("log");
        let child = as_postgres(&postgres_bin("postgres"))
            .arg("-D")
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = Command::new(postgres_bin("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("PostgreSQL did not start on port {}", self.port);
    }

    /// The postmaster's pid, from postmaster.pid.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    pub fn dsn(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs SQL through the unix socket as `postgres` and returns stdout; panics on failure.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = run_ok(self.psql_command(database).args(["-c", sql]));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// A psql command for `database`, tuples only, unaligned, to be given `-c` or stdin.
    pub fn psql_command(&self, database: &str) -> Command {
        let mut command = Command::new(postgres_bin("psql"));
        command
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ]);
        command
    }

    /// Runs SQL in the background (for long statements), returning the psql process.
    pub fn spawn_sql(&self, database: &str, sql: &str) -> super::Peer {
        super::Peer(
            self.psql_command(database)
                .args(["-c", sql])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn psql"),
        )
    }

    /// A session left idle inside an open transaction until the returned process is dropped.
    pub fn idle_in_transaction(&self, database: &str) -> super::Peer {
        let mut child = self
            .psql_command(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn psql");
        if let Some(stdin) = child.stdin.as_mut() {
            use std::io::Write;
            stdin
                .write_all(b"BEGIN;\nSELECT 1;\n")
                .expect("write to psql");
        }
        super::Peer(child)
    }

    /// Fast shutdown, waiting for the server to exit.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, rustix::process::Signal::INT);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freezes the postmaster and every backend (SIGSTOP), as a hung server.
    pub fn freeze(&self) {
        if let Some(pid) = self.pid() {
            for child in children_of(pid) {
                signal(child, rustix::process::Signal::STOP);
            }
            signal(pid, rustix::process::Signal::STOP);
        }
    }

    pub fn thaw(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, rustix::process::Signal::CONT);
            for child in children_of(pid) {
                signal(child, rustix::process::Signal::CONT);
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.thaw();
        if let Some(pid) = self.pid() {
            signal(pid, rustix::process::Signal::QUIT);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Pgbouncer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Pgbouncer {
    /// PgBouncer in transaction mode in front of `postgres`, pool size `pool_size`.
    pub fn start(postgres: &Postgres, pool_size: u32) -> Pgbouncer {
        let program = require_program("pgbouncer", "pgbouncer");
        let dir = shared_temp_dir();
        let port = free_port();
        let userlist = dir.path().join("userlist.txt");
        std::fs::write(&userlist, "\"postgres\" \"\"\n").expect("userlist");
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port={pg}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {userlist}\nadmin_users = postgres\npool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 50\nignore_startup_parameters = extra_float_digits\nlogfile = {log}\n",
                pg = postgres.port,
                userlist = userlist.display(),
                log = dir.path().join("pgbouncer.log").display(),
            ),
        )
        .expect("pgbouncer.ini");
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
        }
        let child = as_postgres(&program)
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let bouncer = Pgbouncer { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PgBouncer did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    pub fn admin_dsn(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/pgbouncer?sslmode=disable",
            self.port
        )
    }

    /// Runs a statement through PgBouncer in the background.
    pub fn spawn_sql(&self, database: &str, sql: &str) -> super::Peer {
        super::Peer(
            Command::new(postgres_bin("psql"))
                .args([
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    database,
                    "-c",
                    sql,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn psql"),
        )
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // runuser's child may outlive it; pgbouncer exits when its listen port is gone anyway.
        let _ = Command::new("pkill")
            .args([
                "-f",
                &format!("{}", self.dir.path().join("pgbouncer.ini").display()),
            ])
            .status();
    }
}

pub struct Redis {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Redis {
    pub fn start(extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = Redis {
            dir,
            port: free_port(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        redis.launch();
        redis
    }

    fn launch(&mut self) {
        let program = require_program("redis-server", "redis-server");
        let child = Command::new(program)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cli(&["PING"]) != "PONG" {
            assert!(
                Instant::now() < deadline,
                "Redis did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Runs redis-cli and returns its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(require_program("redis-cli", "redis-tools"));
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(index) = self.extra.iter().position(|a| a == "--requirepass")
            && let Some(password) = self.extra.get(index + 1)
        {
            command.args(["--no-auth-warning", "-a", password]);
        }
        let output = command.args(args).output().expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            signal(self.pid(), rustix::process::Signal::CONT);
        }
        self.stop();
    }
}
