-- prismwatch: one snapshot of a PostgreSQL server as one JSON document (PostgreSQL 10+; before
-- 14 the collector replaces the query_id column by NULL, see snapshot_sql()).
-- $1: the long-running threshold in seconds; $2: how many user tables to report (max_tables).
-- Every list is bounded (LIMIT), so the document's size does not grow with the server's data
-- beyond a known bound: at most 10000 rows per list, 100 long-running sessions, $2 tables.
-- Each statistics view is read once; zero rows (every database times every state or lock
-- mode, as postgres_exporter reports them) are filled in by the collector, not built here.
WITH activity AS MATERIALIZED (
  SELECT datname, state, wait_event_type, backend_type, pid, usename,
         extract(epoch FROM now() - xact_start)::float8 AS xact_age,
         extract(epoch FROM now() - query_start)::float8 AS query_age,
         extract(epoch FROM now() - state_change)::float8 AS state_age,
         query_id
  FROM pg_stat_activity
), locks AS MATERIALIZED (
  SELECT database, lower(mode) AS mode, granted FROM pg_locks
), user_tables AS MATERIALIZED (
  -- Rows read and written: the cap on tables keeps the busiest ones.
  SELECT *, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) + n_tup_ins + n_tup_upd
            + n_tup_del AS activity
  FROM pg_stat_user_tables
)
SELECT json_build_object(
  'version_num', current_setting('server_version_num')::int,
  'version', version(),
  'start_time', floor(extract(epoch FROM pg_postmaster_start_time()))::float8,
  'max_connections', current_setting('max_connections')::int,
  'superuser_reserved', current_setting('superuser_reserved_connections')::int,
  'reserved', coalesce(current_setting('reserved_connections', true), '0')::int,
  'in_recovery', pg_is_in_recovery(),
  -- postgres_exporter's definition of pg_replication_lag_seconds.
  'replication_lag', CASE
      WHEN NOT pg_is_in_recovery() THEN 0
      WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
      ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp()))::float8
    END,
  -- The next transaction ID to be assigned; reading it, unlike txid_current(), assigns none.
  'txid_current', txid_snapshot_xmax(txid_current_snapshot())::float8,
  'current_database', current_database(),
  'has_statements', EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'),
  'activity', (
    SELECT coalesce(json_agg(json_build_object('datname', datname, 'state', state, 'count', n, 'max_tx', max_tx)), '[]')
    FROM (SELECT datname, state, count(*) AS n, coalesce(max(xact_age), 0) AS max_tx
          FROM activity WHERE datname IS NOT NULL AND state IS NOT NULL GROUP BY 1, 2 LIMIT 10000) a),
  'sessions', (
    SELECT json_build_object(
      'client', count(*) FILTER (WHERE backend_type = 'client backend'),
      'oldest_query', coalesce(max(query_age)
          FILTER (WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()), 0),
      'idle_in_tx', count(*) FILTER (WHERE state LIKE 'idle in transaction%'),
      'idle_in_tx_max', coalesce(max(state_age) FILTER (WHERE state LIKE 'idle in transaction%'), 0),
      'blocked', count(*) FILTER (WHERE wait_event_type = 'Lock'),
      'long_running', (
        SELECT coalesce(json_agg(json_build_object(
            'pid', pid, 'datname', datname, 'user', usename, 'seconds', query_age,
            'query_id', query_id::text) ORDER BY query_age DESC), '[]')
        FROM (SELECT * FROM activity
              WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                AND query_age > $1
              ORDER BY query_age DESC LIMIT 100) l))
    FROM activity),
  'waiting_by_type', (
    SELECT coalesce(json_agg(json_build_object('datname', coalesce(datname, ''), 'wait_event_type', wait_event_type, 'count', n)), '[]')
    FROM (SELECT datname, wait_event_type, count(*) AS n FROM activity
          WHERE backend_type = 'client backend' AND wait_event_type IS NOT NULL
            AND wait_event_type NOT IN ('Client', 'Activity')
          GROUP BY 1, 2 LIMIT 10000) w),
  'databases', (
    SELECT coalesce(json_agg(json_build_object(
      'datid', s.datid::int8, 'datname', coalesce(s.datname, ''), 'numbackends', s.numbackends,
      'xact_commit', s.xact_commit, 'xact_rollback', s.xact_rollback,
      'blks_read', s.blks_read, 'blks_hit', s.blks_hit,
      'tup_returned', s.tup_returned, 'tup_fetched', s.tup_fetched, 'tup_inserted', s.tup_inserted,
      'tup_updated', s.tup_updated, 'tup_deleted', s.tup_deleted, 'conflicts', s.conflicts,
      'temp_files', s.temp_files, 'temp_bytes', s.temp_bytes, 'deadlocks', s.deadlocks,
      'blk_read_time', s.blk_read_time, 'blk_write_time', s.blk_write_time,
      'stats_reset', extract(epoch FROM s.stats_reset)::float8)), '[]')
    FROM (SELECT * FROM pg_stat_database ORDER BY datid LIMIT 10000) s),
  'conflicts', (
    SELECT coalesce(json_agg(json_build_object(
      'datid', c.datid::int8, 'datname', coalesce(c.datname, ''),
      'confl_tablespace', c.confl_tablespace, 'confl_lock', c.confl_lock,
      'confl_snapshot', c.confl_snapshot, 'confl_bufferpin', c.confl_bufferpin,
      'confl_deadlock', c.confl_deadlock)), '[]')
    FROM (SELECT * FROM pg_stat_database_conflicts ORDER BY datid LIMIT 10000) c),
  -- One row; PostgreSQL 17 moved the checkpoint columns to pg_stat_checkpointer (see
  -- snapshot_sql()). Timestamps are whole seconds, as postgres_exporter reports them.
  'bgwriter', (SELECT row_to_json(b) FROM (
      SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time, buffers_checkpoint, buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync, buffers_alloc, floor(extract(epoch FROM stats_reset))::float8 AS stats_reset FROM pg_stat_bgwriter
    ) b),
  -- Settings community rules compare with (autovacuum thresholds, lock table size, read-only),
  -- with the server's own description, as postgres_exporter gives them. None has a unit.
  'settings', (
    SELECT coalesce(json_agg(json_build_object(
      'name', name, 'help', short_desc,
      'value', CASE WHEN vartype = 'bool' THEN (setting = 'on')::int::float8 ELSE setting::float8 END)), '[]')
    FROM (SELECT * FROM pg_settings
          WHERE name IN ('autovacuum_analyze_threshold', 'autovacuum_vacuum_threshold',
                         'max_locks_per_transaction', 'transaction_read_only')
          ORDER BY name LIMIT 100) s),
  'table_count', (SELECT count(*) FROM user_tables),
  'tables', (
    SELECT coalesce(json_agg(json_build_object(
      'schemaname', schemaname, 'relname', relname, 'activity', activity,
      'seq_scan', seq_scan, 'seq_tup_read', seq_tup_read, 'idx_scan', idx_scan,
      'idx_tup_fetch', idx_tup_fetch, 'n_tup_ins', n_tup_ins, 'n_tup_upd', n_tup_upd,
      'n_tup_del', n_tup_del, 'n_tup_hot_upd', n_tup_hot_upd, 'n_live_tup', n_live_tup,
      'n_dead_tup', n_dead_tup, 'n_mod_since_analyze', n_mod_since_analyze,
      'last_vacuum', coalesce(floor(extract(epoch FROM last_vacuum)), 0)::float8,
      'last_autovacuum', coalesce(floor(extract(epoch FROM last_autovacuum)), 0)::float8,
      'last_analyze', coalesce(floor(extract(epoch FROM last_analyze)), 0)::float8,
      'last_autoanalyze', coalesce(floor(extract(epoch FROM last_autoanalyze)), 0)::float8,
      'vacuum_count', vacuum_count, 'autovacuum_count', autovacuum_count,
      'analyze_count', analyze_count, 'autoanalyze_count', autoanalyze_count)), '[]')
    FROM (SELECT * FROM user_tables ORDER BY activity DESC, relid LIMIT $2) t),
  'locks', (
    SELECT coalesce(json_agg(json_build_object('datname', d.datname, 'mode', l.mode, 'count', l.n)), '[]')
    FROM (SELECT database, mode, count(*) AS n FROM locks WHERE database IS NOT NULL GROUP BY 1, 2 LIMIT 10000) l
    JOIN pg_database d ON d.oid = l.database),
  'waiting_locks', (
    SELECT coalesce(json_agg(json_build_object('mode', mode, 'count', n)), '[]')
    FROM (SELECT mode, count(*) AS n FROM locks WHERE NOT granted GROUP BY 1 LIMIT 100) w),
  'replicas', (
    SELECT coalesce(json_agg(json_build_object(
      'application_name', application_name, 'client_addr', coalesce(client_addr::text, ''),
      'state', coalesce(state, ''),
      'lag_bytes', pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                        ELSE pg_current_wal_lsn() END, replay_lsn)::float8,
      'replay_lag', coalesce(extract(epoch FROM replay_lag), 0)::float8)), '[]')
    FROM (SELECT * FROM pg_stat_replication LIMIT 1000) r),
  'slots', (
    SELECT coalesce(json_agg(json_build_object(
      'slot_name', slot_name, 'database', coalesce(database::text, ''), 'active', active,
      'wal_lsn_diff', pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                           ELSE pg_current_wal_lsn() END, restart_lsn)::float8)), '[]')
    FROM (SELECT * FROM pg_replication_slots ORDER BY slot_name LIMIT 1000) s)
)::text
