-- Applied by `pgcdc setup` (PostgreSQL 15+) for each published table whose column list or
-- row filter differs from what the [[rule]]s say: dropped columns are left out of the
-- column list and `where` becomes the row filter, so excluded data never leaves the server.
-- PostgreSQL has no statement that changes a published table's column list or filter: the
-- table leaves the publication and comes back in one transaction, so no change is missed.
-- {{table}} is "schema"."table"; {{table_spec}} adds "(columns) WHERE (filter)".
BEGIN;
ALTER PUBLICATION {{publication}} DROP TABLE {{table}};
ALTER PUBLICATION {{publication}} ADD TABLE {{table_spec}};
COMMIT;
