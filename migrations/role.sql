-- A least-privilege role for pgcdc. NOT applied automatically: a DBA reviews and runs it
-- (psql -v password="'...'" -f migrations/role.sql), then points source.url at it.
--
-- REPLICATION lets it open a replication connection and use its own slot.
-- SELECT on the replicated tables is needed for the full load and `pgcdc validate`.
-- Publications must be created by the table owner or a superuser: run `pgcdc setup` once
-- as such a user, or create the publication yourself.
CREATE ROLE pgcdc WITH LOGIN REPLICATION PASSWORD :password;
GRANT USAGE ON SCHEMA public TO pgcdc;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgcdc;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO pgcdc;
-- Optional heartbeat (source.heartbeat_interval) calls pg_logical_emit_message(), which
-- needs no object and no extra grant on PostgreSQL 14+.
