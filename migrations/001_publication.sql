-- Applied by `pgcdc setup` when the publication does not exist yet.
-- {{publication}} is source.publication; {{tables}} is either "ALL TABLES" (when
-- source.tables is empty; needs a superuser) or "TABLE s.t, ..." resolved from the patterns.
-- pgoutput publishes inserts, updates, deletes and truncates.
CREATE PUBLICATION {{publication}} FOR {{tables}}
    WITH (publish = 'insert, update, delete, truncate');
