//! The demo's sample schema, its initial data (for the full load) and the mixed workload
//! that runs during CDC: inserts, updates (some changing the key),
//! deletes, a streamed 30k-row transaction, an aborted transaction, an added column, and
//! TOASTed values left unchanged by updates.

use tokio_postgres::Client;

use crate::error::{Error, Result};

pub const SCHEMA: &str = "
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text,
    tags text[],
    bio text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
    id int PRIMARY KEY,
    sku uuid NOT NULL,
    name text NOT NULL,
    price numeric(10,2) NOT NULL,
    attrs jsonb
);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    product_id int NOT NULL,
    qty int NOT NULL,
    total numeric(12,2),
    placed_at timestamptz NOT NULL,
    shipped date,
    note text
);
";

/// The data present before pgcdc starts: copied by the full load (~200k rows).
pub const INITIAL: &str = "
    INSERT INTO customers (id, name, email, tags, bio)
        SELECT g, 'customer ' || g, 'c' || g || '@example.com', ARRAY['tag' || (g % 5), NULL, 'vip'],
               CASE WHEN g % 50 = 0 THEN repeat(md5(g::text), 400) END
          FROM generate_series(1, 20000) g;
    INSERT INTO products
        SELECT g, md5(g::text)::uuid, 'product ' || g, (g * 1.25)::numeric(10,2),
               jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + g % 3], 'weight', g)
          FROM generate_series(1, 1000) g;
    INSERT INTO orders
        SELECT g, 1 + g % 20000, 1 + g % 1000, 1 + g % 7, (g % 1000) * 1.1, now() - (g || ' minutes')::interval,
               CASE WHEN g % 3 = 0 THEN DATE '2024-01-01' + g % 365 END, CASE WHEN g % 10 = 0 THEN 'gift, \"wrapped\"' END
          FROM generate_series(1, 180000) g;
    ANALYZE;
";

/// What happens while pgcdc runs: replicated by CDC.
const STEPS: &[(&str, &str)] = &[
    ("new customers", "INSERT INTO customers (id, name, email, tags)
        SELECT g, 'customer ' || g, 'c' || g || '@example.com', ARRAY['new'] FROM generate_series(20001, 21000) g"),
    ("new orders", "INSERT INTO orders
        SELECT g, 1 + g % 20000, 1 + g % 1000, 1, 5.5, now(), NULL, NULL FROM generate_series(180001, 185000) g"),
    ("update prices", "UPDATE products SET price = price * 1.10 WHERE id % 4 = 0"),
    ("update customers (bio unchanged: TOAST)", "UPDATE customers SET email = 'new' || id || '@example.com' WHERE id % 50 = 0"),
    ("change order keys", "UPDATE orders SET id = id + 1000000 WHERE id % 97 = 0"),
    ("delete orders", "DELETE FROM orders WHERE id % 13 = 0"),
    ("add a column", "ALTER TABLE products ADD COLUMN discontinued boolean"),
    ("use the new column", "UPDATE products SET discontinued = true WHERE id % 9 = 0"),
    ("big transaction (streamed)", "INSERT INTO orders
        SELECT g, 1 + g % 20000, 1 + g % 1000, 2, 9.99, now(), NULL, NULL FROM generate_series(2000001, 2030000) g"),
    ("aborted transaction", "BEGIN; INSERT INTO orders SELECT g, 1, 1, 1, 1, now() FROM generate_series(3000001, 3020000) g; ROLLBACK"),
];

pub async fn run(client: &Client) -> Result<()> {
    for (what, sql) in STEPS {
        tracing::info!("workload: {what}");
        client
            .batch_execute(sql)
            .await
            .map_err(|e| Error::runtime(format!("demo workload step `{what}`: {}", crate::source::sql::db_error_text(&e))))?;
    }
    Ok(())
}
