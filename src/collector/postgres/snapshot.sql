-- prismwatch: one snapshot of a PostgreSQL server as one JSON document (PostgreSQL 14+).
-- $1: the long-running threshold in seconds.
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
  -- postgres_exporter's pg_stat_activity: every database times every state, zeros included.
  'activity', (
    SELECT coalesce(json_agg(json_build_object(
             'datname', d.datname, 'state', s.state,
             'count', coalesce(a.count, 0), 'max_tx', coalesce(a.max_tx, 0))), '[]')
    FROM (VALUES ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)'),
                 ('fastpath function call'), ('disabled')) AS s(state)
    CROSS JOIN pg_database d
    LEFT JOIN (
      SELECT datname, state, count(*) AS count,
             max(extract(epoch FROM now() - xact_start))::float8 AS max_tx
      FROM pg_stat_activity GROUP BY datname, state
    ) a ON a.state = s.state AND a.datname = d.datname),
  'sessions', (
    SELECT json_build_object(
      'client', count(*) FILTER (WHERE backend_type = 'client backend'),
      'oldest_query', coalesce(max(extract(epoch FROM now() - query_start))
          FILTER (WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()), 0)::float8,
      'idle_in_tx', count(*) FILTER (WHERE state LIKE 'idle in transaction%'),
      'idle_in_tx_max', coalesce(max(extract(epoch FROM now() - state_change))
          FILTER (WHERE state LIKE 'idle in transaction%'), 0)::float8,
      'blocked', count(*) FILTER (WHERE wait_event_type = 'Lock'),
      'waiting_by_type', (
        SELECT coalesce(json_agg(json_build_object('datname', coalesce(w.datname, ''), 'wait_event_type', w.wait_event_type, 'count', w.count)), '[]')
        FROM (SELECT datname, wait_event_type, count(*) AS count FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND wait_event_type IS NOT NULL
                AND wait_event_type NOT IN ('Client', 'Activity')
              GROUP BY 1, 2) w),
      'long_running', coalesce(json_agg(json_build_object(
          'pid', pid, 'datname', datname, 'user', usename,
          'seconds', extract(epoch FROM now() - query_start)::float8,
          'query_id', query_id::text) ORDER BY query_start)
        FILTER (WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                AND now() - query_start > make_interval(secs => $1)), '[]'))
    FROM pg_stat_activity),
  'databases', (
    SELECT coalesce(json_agg(json_build_object(
      'datid', s.datid::int8, 'datname', coalesce(s.datname, ''), 'numbackends', s.numbackends,
      'xact_commit', s.xact_commit, 'xact_rollback', s.xact_rollback,
      'blks_read', s.blks_read, 'blks_hit', s.blks_hit,
      'tup_returned', s.tup_returned, 'tup_fetched', s.tup_fetched, 'tup_inserted', s.tup_inserted,
      'tup_updated', s.tup_updated, 'tup_deleted', s.tup_deleted, 'conflicts', s.conflicts,
      'temp_files', s.temp_files, 'temp_bytes', s.temp_bytes, 'deadlocks', s.deadlocks,
      'blk_read_time', s.blk_read_time, 'blk_write_time', s.blk_write_time,
      'stats_reset', extract(epoch FROM s.stats_reset)::float8,
      'size', CASE WHEN s.datid <> 0 THEN pg_database_size(s.datid)::float8 END)), '[]')
    FROM pg_stat_database s),
  -- postgres_exporter's pg_locks_count: every database times every mode, zeros included.
  'locks', (
    SELECT coalesce(json_agg(json_build_object('datname', d.datname, 'mode', m.mode, 'count', coalesce(l.count, 0))), '[]')
    FROM (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), ('shareupdateexclusivelock'),
                 ('sharelock'), ('sharerowexclusivelock'), ('exclusivelock'), ('accessexclusivelock'),
                 ('sireadlock')) AS m(mode)
    CROSS JOIN pg_database d
    LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count FROM pg_locks
               WHERE database IS NOT NULL GROUP BY database, lower(mode)) l
      ON l.mode = m.mode AND l.database = d.oid),
  'waiting_locks', (
    SELECT coalesce(json_agg(json_build_object('mode', mode, 'count', count)), '[]')
    FROM (SELECT lower(mode) AS mode, count(*) AS count FROM pg_locks WHERE NOT granted GROUP BY 1) w),
  'replicas', (
    SELECT coalesce(json_agg(json_build_object(
      'application_name', application_name, 'client_addr', coalesce(client_addr::text, ''),
      'state', coalesce(state, ''),
      'lag_bytes', pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                        ELSE pg_current_wal_lsn() END, replay_lsn)::float8,
      'replay_lag', coalesce(extract(epoch FROM replay_lag), 0)::float8)), '[]')
    FROM pg_stat_replication)
)::text
