//! Partitioned tables in SQL: the leaf partitions that hold a published table's rows.

use super::catalog::Catalog;
use crate::error::Result;

/// An SQL expression (type `oid[]`) for the sorted leaf OIDs of the relation `oid_expr`:
/// its partitions' (PostgreSQL 12+, `pg_partition_tree`), or its own. Partitioned tables
/// cannot be published before PostgreSQL 13, so older servers need no tree.
pub async fn leaves_sql(catalog: &Catalog, oid_expr: &str) -> Result<String> {
    Ok(if catalog.server_version_num().await? >= 120000 {
        format!(
            "COALESCE((SELECT array_agg(t.relid::oid ORDER BY t.relid::oid) FROM pg_partition_tree({oid_expr}) t WHERE t.isleaf), ARRAY[{oid_expr}])"
        )
    } else {
        format!("ARRAY[{oid_expr}]")
    })
}
