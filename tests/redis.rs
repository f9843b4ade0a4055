//! The Redis collector against a private, real redis-server: hits and misses, the hit ratio,
//! memory against maxmemory, evictions, keyspace and per-command statistics.

mod common;

use common::servers::Redis;
use common::{Daemon, wait_for};

#[test]
fn hits_misses_evictions_and_memory_are_reported() {
    let redis = Redis::start(&["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]);
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[redis]]\nurl = \"{}\"\ninterval = \"500ms\"\n",
        redis.url()
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let server = redis.address();
    let key = |name: &str| format!("{name}{{server=\"{server}\"}}");
    wait_for(&daemon, "redis_up 1", 10, |e| {
        e.value(&key("redis_up")) == Some(1.0)
    });

    // Three hits and one miss.
    redis.cli(&["SET", "user:1", "alice"]);
    for _ in 0..3 {
        assert_eq!(redis.cli(&["GET", "user:1"]), "alice");
    }
    redis.cli(&["GET", "user:404"]);
    let exposition = wait_for(&daemon, "hits and misses", 10, |e| {
        e.value(&key("redis_keyspace_hits_total")) == Some(3.0)
            && e.value(&key("redis_keyspace_misses_total")) == Some(1.0)
    });
    assert_eq!(
        exposition.value(&key("prismwatch_redis_keyspace_hit_ratio_since_start")),
        Some(0.75)
    );
    assert_eq!(
        exposition.value(&format!("redis_db_keys{{db=\"db0\",server=\"{server}\"}}")),
        Some(1.0)
    );
    assert_eq!(
        exposition.value(&format!("redis_db_keys{{db=\"db15\",server=\"{server}\"}}")),
        Some(0.0)
    );
    assert_eq!(
        exposition.value(&format!(
            "redis_commands_total{{cmd=\"get\",server=\"{server}\"}}"
        )),
        Some(4.0)
    );
    assert_eq!(
        exposition.value(&key("redis_memory_max_bytes")),
        Some(2.0 * 1024.0 * 1024.0)
    );
    assert!(
        exposition
            .value(&key("prismwatch_redis_ping_seconds"))
            .is_some_and(|v| v > 0.0 && v < 1.0)
    );

    // Fill past maxmemory: keys are evicted.
    let value = "v".repeat(10_000);
    let mut script = String::new();
    for i in 0..600 {
        script.push_str(&format!("SET fill:{i} {value}\n"));
    }
    let mut child = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), script.as_bytes())
        .expect("write");
    drop(child.stdin.take());
    let _ = child.wait();
    let exposition = wait_for(&daemon, "evictions", 10, |e| {
        e.value(&key("redis_evicted_keys_total"))
            .is_some_and(|v| v > 0.0)
    });
    let used = exposition
        .value(&key("prismwatch_redis_memory_used_ratio"))
        .unwrap_or(0.0);
    assert!(used > 0.5, "memory used ratio {used}");

    // A second interval with only misses drops the interval hit ratio to 0.
    for i in 0..5 {
        redis.cli(&["GET", &format!("absent:{i}")]);
    }
    wait_for(&daemon, "an interval hit ratio of 0", 10, |e| {
        e.value(&key("prismwatch_redis_keyspace_hit_ratio")) == Some(0.0)
    });
}

#[test]
fn a_reload_adds_and_removes_targets() {
    let redis = Redis::start(&[]);
    let mut daemon = Daemon::start_ready(Some("[host]\ninterval = \"1s\"\n"), &[]);
    let redis_up = format!("redis_up{{server=\"{}\"}}", redis.address());
    assert_eq!(daemon.scrape().value(&redis_up), None);
    std::fs::write(
        daemon.config_path(),
        format!(
            "[host]\ninterval = \"1s\"\n[[redis]]\nurl = \"{}\"\ninterval = \"500ms\"\n",
            redis.url()
        ),
    )
    .expect("write config");
    daemon.signal(rustix::process::Signal::HUP);
    wait_for(&daemon, "the added Redis target", 10, |e| {
        e.value(&redis_up) == Some(1.0)
    });
    std::fs::write(daemon.config_path(), "[host]\ninterval = \"1s\"\n").expect("write config");
    daemon.signal(rustix::process::Signal::HUP);
    // The removed target's series end (stale), they do not linger at their last value.
    wait_for(&daemon, "the removed Redis target to disappear", 10, |e| {
        e.value(&redis_up).is_none() && e.keys_of("redis_db_keys").is_empty()
    });
    daemon.signal(rustix::process::Signal::TERM);
    assert!(
        daemon
            .wait_exit(std::time::Duration::from_secs(5))
            .is_some()
    );
}

#[test]
fn password_unix_socket_and_tls_targets_work() {
    let certs = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = common::make_ca_and_server_cert(certs.path());
    let socket = certs.path().join("redis.sock");
    let tls_port = common::free_port();
    let (cert_arg, key_arg, socket_arg) = (
        cert.display().to_string(),
        key.display().to_string(),
        socket.display().to_string(),
    );
    let tls_port_arg = tls_port.to_string();
    let redis = Redis::start(&[
        "--requirepass",
        "s3cret-pass",
        "--unixsocket",
        &socket_arg,
        "--unixsocketperm",
        "700",
        "--tls-port",
        &tls_port_arg,
        "--tls-cert-file",
        &cert_arg,
        "--tls-key-file",
        &key_arg,
        "--tls-ca-cert-file",
        &ca.display().to_string(),
        "--tls-auth-clients",
        "no",
    ]);
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[redis]]\nname = \"tcp\"\nurl = \"redis://:s3cret-pass@127.0.0.1:{}\"\ninterval = \"500ms\"\n\n[[redis]]\nname = \"unix\"\nurl = \"unix://{}?pass=s3cret-pass\"\ninterval = \"500ms\"\n\n[[redis]]\nname = \"tls\"\nurl = \"rediss://:s3cret-pass@127.0.0.1:{tls_port}\"\nca_file = \"{}\"\ninterval = \"500ms\"\n\n[[redis]]\nname = \"wrong\"\nurl = \"redis://:not-it@127.0.0.1:{}\"\ninterval = \"500ms\"\n",
        redis.port,
        socket.display(),
        ca.display(),
        redis.port
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let exposition = wait_for(&daemon, "three targets up and one refused", 10, |e| {
        ["tcp", "unix", "tls"]
            .iter()
            .all(|s| e.value(&format!("redis_up{{server=\"{s}\"}}")) == Some(1.0))
            && e.value("redis_up{server=\"wrong\"}") == Some(0.0)
    });
    assert!(
        exposition
            .value("redis_connected_clients{server=\"tls\"}")
            .is_some_and(|v| v >= 3.0)
    );
    let logs = daemon.logs();
    assert!(
        !logs.contains("s3cret-pass") && !logs.contains("not-it"),
        "a password leaked into the logs: {logs}"
    );
    assert!(
        logs.contains("collector=redis:wrong"),
        "the refused target is logged: {logs}"
    );
}

/// A fake Redis that answers every connection's first command with a bulk length of
/// 1,000,000,000 and then streams bytes (at most `limit` per connection), as a hostile or broken
/// endpoint would. Returns its address and the number of connections it served.
fn start_bulk_flood(limit: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::thread::spawn(move || {
                let mut request = [0u8; 1024];
                if stream.read(&mut request).is_err() {
                    return;
                }
                let _ = stream.write_all(b"$1000000000\r\n");
                let chunk = vec![b'x'; 64 << 10];
                let mut sent = 0;
                while sent < limit && stream.write_all(&chunk).is_ok() {
                    sent += chunk.len();
                }
            });
        }
    });
    (address, served)
}

#[test]
fn a_gigantic_bulk_reply_is_refused_without_growing_memory() {
    let (address, served) = start_bulk_flood(1 << 30);
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[redis]]\nurl = \"redis://{address}\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n"
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let key = format!("redis_up{{server=\"{address}\"}}");
    let baseline = common::rss_bytes(daemon.pid());
    wait_for(
        &daemon,
        "redis_up 0 after several refused replies",
        10,
        |e| e.value(&key) == Some(0.0) && served.load(std::sync::atomic::Ordering::Relaxed) >= 4,
    );
    let after = common::rss_bytes(daemon.pid());
    assert!(
        after < baseline + (64 << 20),
        "RSS grew from {baseline} to {after} bytes"
    );
    let logs = daemon.logs();
    assert!(
        logs.contains(
            "reply larger than the limit of 4194304 bytes (a string of 1000000000 bytes)"
        ),
        "{logs}"
    );
    eprintln!("RSS before {baseline} bytes, after {after} bytes");
}

#[test]
fn a_stopped_server_is_logged_as_refused_after_the_broken_connection() {
    let mut redis = Redis::start(&[]);
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[redis]]\nurl = \"{}\"\ninterval = \"500ms\"\n",
        redis.url()
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let key = format!("redis_up{{server=\"{}\"}}", redis.address());
    wait_for(&daemon, "redis_up 1", 10, |e| e.value(&key) == Some(1.0));
    redis.stop();
    wait_for(&daemon, "redis_up 0", 10, |e| e.value(&key) == Some(0.0));
    // The open connection breaks first; the refusals that follow are a new kind, logged again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !daemon.logs().contains("connection refused") {
        assert!(
            std::time::Instant::now() < deadline,
            "the refusal is never logged: {}",
            daemon.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let logs = daemon.logs();
    assert!(
        logs.contains("kind=connection refused")
            || logs.contains("\"kind\":\"connection refused\""),
        "{logs}"
    );
}

#[test]
fn a_wrong_password_is_logged_as_an_authentication_failure() {
    let redis = Redis::start(&["--requirepass", "right-pass"]);
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[redis]]\nurl = \"redis://:wrong-pass@{}\"\ninterval = \"500ms\"\n",
        redis.address()
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let key = format!("redis_up{{server=\"{}\"}}", redis.address());
    wait_for(&daemon, "redis_up 0", 10, |e| e.value(&key) == Some(0.0));
    let logs = daemon.logs();
    assert!(logs.contains("kind=authentication failed"), "{logs}");
    assert!(
        !logs.contains("wrong-pass"),
        "the password is never logged: {logs}"
    );
}
