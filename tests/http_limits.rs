//! Clients that hold connections: a request body that drips is cut off at `web.read_timeout`
//! with 408, and connections beyond `web.max_connections` are closed at once and counted.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Daemon;

/// Opens a connection that sends a POST's headers and the first bytes of a 1,000-byte body.
fn dripping_post(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    stream
        .write_all(
            b"POST /api/v1/ai/usage HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"events\":",
        )
        .expect("send headers");
    stream
}

/// What the server sent before closing the connection (empty if it closed without answering).
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("no answer and no close: {error}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn dripping_bodies_time_out_and_connections_are_capped() {
    let daemon = Daemon::start_ready(
        Some("[web]\nmax_connections = 8\nread_timeout = \"2s\"\n"),
        &[],
    );
    let mut drips: Vec<TcpStream> = (0..8).map(|_| dripping_post(&daemon.address)).collect();
    // Keep dripping a byte every 300 ms: each byte arrives well within any idle timeout.
    let dripper = {
        let mut clones: Vec<TcpStream> = drips
            .iter()
            .map(|s| s.try_clone().expect("clone"))
            .collect();
        std::thread::spawn(move || {
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(300));
                for stream in &mut clones {
                    let _ = stream.write_all(b" ");
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // All eight slots are taken: further connections are closed without an answer.
    for _ in 0..5 {
        let mut extra = TcpStream::connect(&daemon.address).expect("connect");
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(read_to_close(&mut extra), "", "served beyond the cap");
    }
    // Each dripping body is cut off at the read timeout with 408, and its connection closed.
    for stream in &mut drips {
        let answer = read_to_close(stream);
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "dripping body not timed out: {answer:?}"
        );
        assert!(answer.contains("web.read_timeout"), "{answer}");
    }
    let _ = dripper.join();
    let exposition = daemon.scrape();
    assert_eq!(
        exposition.value("prismwatch_http_connections_refused_total"),
        Some(5.0)
    );
    assert_eq!(
        exposition.value("prismwatch_http_request_timeouts_total"),
        Some(8.0)
    );
    let logs = daemon.logs();
    assert_eq!(
        logs.matches("Refused a connection").count(),
        1,
        "refusals are logged once a minute: {logs}"
    );
}
