-- prismwatch: one snapshot of a PostgreSQL server as one JSON document (PostgreSQL 10+; before
-- 14 the collector replaces the query_id column by NULL, see snapshot_sql()).
-- $1: the long-running threshold in seconds.
-- Every list is bounded (LIMIT), so the document's size does not grow with the server's data
-- beyond a known bound: at most 10000 rows per list, 100 long-running sessions.
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
)
SELECT json_build_object(
  'version_num', current_setting('server_version_num')::int,
  'version', version(),
  'start_time', extract(epoch FROM pg_postmaster_start_time())::float8,
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
    FROM (SELECT * FROM pg_stat_replication LIMIT 1000) r)
)::text
