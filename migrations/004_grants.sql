-- What the role pgcdc runs as may read. Applied by `pgcdc setup --admin-url URL` for the
-- schemas and tables of the publication that the role cannot read yet; {{schemas}} and
-- {{tables}} are those lists, {{role}} the user in source.url.
--
-- USAGE on the schemas and SELECT on exactly the published tables: the full load, reloads
-- and `validate` read them with COPY/SELECT. No INSERT, UPDATE, DELETE, TRUNCATE, no other
-- table. A table added to the publication later is granted by the next `setup`.
-- pg_logical_emit_message() (source.heartbeat_interval) needs no grant.
GRANT USAGE ON SCHEMA {{schemas}} TO {{role}};
GRANT SELECT ON TABLE {{tables}} TO {{role}};
