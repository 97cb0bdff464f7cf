//! Catalog queries over an ordinary SQL session: type facts for non-builtin types, table
//! keys, publications, slots and server settings.

use tokio_postgres::Client;

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{CatalogType, ColumnSchema, TableSchema, builtin, resolve};
use crate::error::{Error, Result};
use crate::model::Lsn;

pub struct Catalog {
    pub client: Client,
}

#[derive(Debug, Clone)]
pub struct SlotState {
    pub plugin: Option<String>,
    pub slot_type: String,
    pub database: Option<String>,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub confirmed_flush_lsn: Option<Lsn>,
    pub restart_lsn: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost` (PG13+).
    pub wal_status: Option<String>,
    pub safe_wal_size: Option<i64>,
}

fn q(e: tokio_postgres::Error, what: &str) -> Error {
    super::sql::query_error(what, &e)
}

impl Catalog {
    pub fn new(client: Client) -> Catalog {
        Catalog { client }
    }

    pub async fn setting(&self, name: &str) -> Result<String> {
        let row = self
            .client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .map_err(|e| q(e, &format!("reading setting {name}")))?;
        Ok(row.get(0))
    }

    pub async fn server_version_num(&self) -> Result<u32> {
        Ok(self.setting("server_version_num").await?.parse().unwrap_or(0))
    }

    /// The end of WAL inserted so far (`pg_current_wal_insert_lsn()`): every transaction
    /// that has committed has its commit record before it. (`pg_current_wal_lsn()` is the
    /// write position, which lags commits made with `synchronous_commit = off`.)
    pub async fn current_wal_lsn(&self) -> Result<Lsn> {
        let row = self
            .client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(|e| q(e, "reading pg_current_wal_lsn()"))?;
        row.get::<_, String>(0).parse().map_err(Error::runtime)
    }

    /// (superuser, replication) attributes of the current role.
    pub async fn role_attributes(&self) -> Result<(bool, bool)> {
        let row = self
            .client
            .query_one("SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user", &[])
            .await
            .map_err(|e| q(e, "reading role attributes"))?;
        Ok((row.get(0), row.get(1)))
    }

    pub async fn publication_exists(&self, name: &str) -> Result<bool> {
        let row = self
            .client
            .query_one("SELECT count(*) FROM pg_publication WHERE pubname = $1", &[&name])
            .await
            .map_err(|e| q(e, "reading pg_publication"))?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    /// Tables of a publication as (schema, table, replica identity, has primary key).
    pub async fn publication_tables(&self, name: &str) -> Result<Vec<(String, String, String, bool)>> {
        let rows = self
            .client
            .query(
                "SELECT p.schemaname::text, p.tablename::text, c.relreplident::text,
                        EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
                   FROM pg_publication_tables p
                   JOIN pg_namespace n ON n.nspname = p.schemaname
                   JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
                  WHERE p.pubname = $1
                  ORDER BY 1, 2",
                &[&name],
            )
            .await
            .map_err(|e| q(e, "reading pg_publication_tables"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
    }

    /// Whether the publication is `FOR ALL TABLES` (false when it does not exist).
    pub async fn publication_all_tables(&self, name: &str) -> Result<bool> {
        let row = self
            .client
            .query_opt("SELECT puballtables FROM pg_publication WHERE pubname = $1", &[&name])
            .await
            .map_err(|e| q(e, "reading pg_publication"))?;
        Ok(row.is_some_and(|r| r.get(0)))
    }

    pub async fn slot(&self, name: &str) -> Result<Option<SlotState>> {
        let version = self.server_version_num().await?;
        let extra = if version >= 130000 { "wal_status::text, safe_wal_size" } else { "NULL::text, NULL::bigint" };
        let sql = format!(
            "SELECT plugin::text, slot_type::text, database::text, active, active_pid,
                    confirmed_flush_lsn::text, restart_lsn::text, {extra}
               FROM pg_replication_slots WHERE slot_name = $1"
        );
        let rows = self.client.query(&sql, &[&name]).await.map_err(|e| q(e, "reading pg_replication_slots"))?;
        let Some(r) = rows.first() else { return Ok(None) };
        let lsn = |i: usize| r.get::<_, Option<String>>(i).and_then(|s| s.parse().ok());
        Ok(Some(SlotState {
            plugin: r.get(0),
            slot_type: r.get(1),
            database: r.get(2),
            active: r.get(3),
            active_pid: r.get(4),
            confirmed_flush_lsn: lsn(5),
            restart_lsn: lsn(6),
            wal_status: r.get(7),
            safe_wal_size: r.get(8),
        }))
    }

    /// Primary-key column names of a table in constraint order (empty if none).
    pub async fn primary_key(&self, relid: u32) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text
                   FROM pg_index i
                   JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indrelid = $1 AND i.indisprimary
                  ORDER BY k.ord",
                &[&relid],
            )
            .await
            .map_err(|e| q(e, "reading primary key"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Facts about a type for [`crate::model::resolve`].
    pub async fn type_facts(&self, oid: u32) -> Result<Option<CatalogType>> {
        let rows = self
            .client
            .query(
                "SELECT typname::text, typtype::text, typbasetype, typtypmod, typelem, typdelim::text, typcategory::text
                   FROM pg_type WHERE oid = $1",
                &[&oid],
            )
            .await
            .map_err(|e| q(e, "reading pg_type"))?;
        Ok(rows.first().map(|r| {
            let ch = |i: usize| r.get::<_, String>(i).bytes().next().unwrap_or(b' ');
            CatalogType {
                oid,
                name: r.get(0),
                typtype: ch(1),
                base_type: r.get(2),
                base_typmod: r.get(3),
                element: r.get(4),
                delimiter: ch(5),
                category: ch(6),
            }
        }))
    }

    /// The current schema of a table, resolved like the pipeline resolves Relation messages
    /// (key = the replica identity's columns, see [`crate::model::choose_key`]).
    pub async fn table_schema(&self, schema: &str, table: &str) -> Result<Arc<TableSchema>> {
        let rel = self
            .client
            .query_opt(
                "SELECT c.oid, c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &table],
            )
            .await
            .map_err(|e| q(e, "reading pg_class"))?
            .ok_or_else(|| Error::runtime(format!("table {schema}.{table} does not exist")))?;
        let relid: u32 = rel.get(0);
        let ident: String = rel.get(1);
        let cols = self
            .client
            .query(
                "SELECT a.attname::text, a.atttypid, a.atttypmod,
                        COALESCE(a.attnum = ANY (ri.indkey::int2[]), false), a.attnum
                   FROM pg_attribute a
                   LEFT JOIN pg_index ri ON ri.indrelid = a.attrelid AND ri.indisreplident
                  WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                  ORDER BY a.attnum",
                &[&relid],
            )
            .await
            .map_err(|e| q(e, "reading pg_attribute"))?;
        let mut facts: HashMap<u32, Option<CatalogType>> = HashMap::new();
        let mut todo: Vec<(u32, i32)> = cols.iter().map(|r| (r.get::<_, u32>(1), r.get::<_, i32>(2))).collect();
        while let Some((oid, typmod)) = todo.pop() {
            if facts.contains_key(&oid) || builtin(oid, typmod).is_some() {
                continue;
            }
            let f = self.type_facts(oid).await?;
            if let Some(f) = &f {
                if f.base_type != 0 {
                    todo.push((f.base_type, f.base_typmod));
                }
                if f.element != 0 {
                    todo.push((f.element, -1));
                }
            }
            facts.insert(oid, f);
        }
        let pk = self.primary_key(relid).await?;
        let columns: Vec<ColumnSchema> = cols
            .iter()
            .map(|r| {
                let (oid, typmod): (u32, i32) = (r.get(1), r.get(2));
                ColumnSchema {
                    name: r.get(0),
                    type_oid: oid,
                    type_modifier: typmod,
                    pg_type: resolve(oid, typmod, &mut |o| facts.get(&o).cloned().flatten()),
                    replica_identity: ident == "f" || r.get::<_, bool>(3),
                    attnum: Some(r.get(4)),
                    missing: None,
                }
            })
            .collect();
        let ident = ident.bytes().next().unwrap_or(b'd');
        let key = crate::model::choose_key(&columns, &pk, ident);
        Ok(Arc::new(TableSchema {
            relid,
            schema: schema.to_string(),
            name: table.to_string(),
            columns,
            key,
            replica_identity: ident,
            relfilenode: None,
        }))
    }
}
