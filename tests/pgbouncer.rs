//! The PgBouncer collector against a private PgBouncer in front of a private PostgreSQL: pool
//! exhaustion makes clients wait, and the waiting shows.

mod common;

use common::servers::{Pgbouncer, Postgres};
use common::{Daemon, wait_for};

#[test]
fn pool_exhaustion_shows_waiting_clients_and_saturation() {
    let postgres = Postgres::start();
    let bouncer = Pgbouncer::start(&postgres, 1);
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[pgbouncer]]\ndsn = \"{}\"\ninterval = \"500ms\"\n",
        bouncer.admin_dsn()
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let server = format!("127.0.0.1:{}", bouncer.port);
    let key = |name: &str, extra: &str| format!("{name}{{{extra}server=\"{server}\"}}");
    wait_for(&daemon, "pgbouncer_up 1", 10, |e| {
        e.value(&key("pgbouncer_up", "")) == Some(1.0)
    });

    // Pool size 1, three clients each holding a transaction for 4 s: two must wait.
    let _clients: Vec<_> = (0..3)
        .map(|_| bouncer.spawn_sql("postgres", "SELECT pg_sleep(4)"))
        .collect();
    let pool = "database=\"postgres\",";
    let exposition = wait_for(&daemon, "waiting clients", 10, |e| {
        e.value(&key(
            "pgbouncer_pools_client_waiting_connections",
            &format!("{pool}user=\"postgres\","),
        ))
        .is_some_and(|v| v >= 2.0)
    });
    let labels = format!("{pool}user=\"postgres\",");
    assert_eq!(
        exposition.value(&key("pgbouncer_pools_client_active_connections", &labels)),
        Some(1.0)
    );
    assert_eq!(
        exposition.value(&key("pgbouncer_pools_server_active_connections", &labels)),
        Some(1.0)
    );
    assert_eq!(
        exposition.value(&key("prismwatch_pgbouncer_pool_saturation_ratio", &labels)),
        Some(1.0)
    );
    assert!(
        exposition
            .value(&key("prismwatch_pgbouncer_waiting_ratio", &labels))
            .is_some_and(|v| v >= 2.0 / 3.0 - 1e-9)
    );
    assert!(
        exposition
            .value(&key("pgbouncer_pools_client_maxwait_seconds", &labels))
            .is_some_and(|v| v >= 0.0)
    );
    assert_eq!(
        exposition.value(&key("pgbouncer_config_max_client_connections", "")),
        Some(50.0)
    );
    assert_eq!(
        exposition.value(&key("prismwatch_pgbouncer_default_pool_size", "")),
        Some(1.0)
    );
    assert!(
        exposition
            .keys_of("pgbouncer_version_info")
            .iter()
            .any(|k| k.contains("version=\"1."))
    );

    // The transactions finish: stats count them and nobody waits any more.
    let exposition = wait_for(&daemon, "the queue to drain", 20, |e| {
        e.value(&key("pgbouncer_pools_client_waiting_connections", &labels)) == Some(0.0)
            && e.value(&key("pgbouncer_stats_sql_transactions_pooled_total", pool))
                .is_some_and(|v| v >= 3.0)
    });
    assert!(
        exposition
            .value(&key("pgbouncer_stats_client_wait_seconds_total", pool))
            .is_some_and(|v| v > 1.0)
    );
    assert!(
        exposition
            .value(&key("pgbouncer_lists_used_clients", ""))
            .is_some_and(|v| v >= 1.0)
    );
}
