-- Applied by `pgcdc setup` when the slot does not exist yet. The slot retains WAL until
-- pgcdc confirms it: drop it with `pgcdc teardown --yes` when you stop replicating.
SELECT pg_create_logical_replication_slot({{slot}}, 'pgoutput');
