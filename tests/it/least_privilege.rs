//! Issue 11 step 4: `pgcdc setup --admin-url` applies `migrations/` in order — the
//! publication, the slot, the least-privilege role in `source.url` and its grants —
//! idempotently, records what it applied, and `--print` shows the SQL instead. Then the
//! whole job (full load, CDC, validate, status, check) runs as that role: REPLICATION and
//! SELECT on the published tables, nothing else.

use crate::support::{assert_success, describe, stdout, write_config, Setup};

const PASSWORD: &str = "Lp-s3cret-9f2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privilege_role_from_setup_runs_load_cdc_validate_and_status() {
    let s = Setup::new("least_priv").await;
    let role = s.db.unique("lp");
    s.db.exec(
        "CREATE SCHEMA shop;
         CREATE TABLE shop.items (id int PRIMARY KEY, name text, qty int, price numeric(10,2));
         CREATE TABLE public.notes (id bigint PRIMARY KEY, body text, meta jsonb);
         CREATE TABLE public.secrets (id int PRIMARY KEY, card text);
         INSERT INTO shop.items SELECT g, 'item ' || g, g % 10, g * 1.5 FROM generate_series(1, 2000) g;
         INSERT INTO public.notes SELECT g, repeat('n', g), '{\"a\": 1}' FROM generate_series(1, 50) g;
         INSERT INTO public.secrets VALUES (1, '4111-1111-1111-1111');",
    )
    .await;
    let toml = crate::support::config_toml(
        &s.db.url_with_password(&role, PASSWORD),
        &s.publication,
        &s.slot,
        &s.out(),
        "tables = [\"shop.items\", \"public.notes\"]\n",
    )
    .replace("mode = \"cdc\"", "mode = \"full-load-and-cdc\"");
    let cfg = write_config(s.dir.path(), &toml);
    let admin = s.db.url.clone();

    // --print: the SQL of every migration for a DBA, the password as a psql variable; nothing changes.
    let out = s.pgcdc(&cfg, &["setup", "--print", "--admin-url", &admin]).await;
    assert_success(&out, "setup --print");
    let sql = stdout(&out);
    let expected_grant = "GRANT SELECT ON TABLE \"public\".\"notes\", \"shop\".\"items\" TO";
    for needle in ["-- 001_publication.sql", "CREATE PUBLICATION", "-- 002_slot.sql", "pg_create_logical_replication_slot", "-- 003_role.sql", "LOGIN REPLICATION NOSUPERUSER", "PASSWORD :'password'", "-- 004_grants.sql", expected_grant] {
        assert!(sql.contains(needle), "`{needle}` missing from:\n{sql}");
    }
    assert!(!sql.contains("secrets"), "an unpublished table is granted nothing:\n{sql}");
    let printed = describe(&out);
    assert!(!printed.contains(PASSWORD), "the password was printed:\n{printed}");
    assert!(s.db.slot_names().await.is_empty(), "--print created a slot");
    assert_eq!(role_count(&s, &role).await, 0, "--print created the role");

    // setup (the admin URL from the environment, as a DBA would pass it).
    let mut cmd = crate::support::pgcdc();
    cmd.args(["setup", "-c"]).arg(&cfg).env("PGCDC_ADMIN_URL", &admin);
    let out = crate::support::output_of(cmd).await;
    assert_success(&out, "setup --admin-url");
    let text = describe(&out);
    assert!(!text.contains(PASSWORD), "{text}");
    for needle in ["created publication", "created replication slot", &format!("created role {role}"), "granted role"] {
        assert!(text.contains(needle), "`{needle}` missing: {text}");
    }
    let attrs = s
        .db
        .query_strings(&format!(
            "SELECT concat_ws(',', rolcanlogin, rolreplication, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolinherit) FROM pg_roles WHERE rolname = '{role}'"
        ))
        .await;
    assert_eq!(attrs, vec![vec![Some("t,t,f,f,f,f,f".to_string())]], "LOGIN REPLICATION and nothing else");
    let privileges = s
        .db
        .query_strings(&format!(
            "SELECT concat_ws(',', has_table_privilege('{role}', 'shop.items', 'SELECT'), has_table_privilege('{role}', 'public.notes', 'SELECT'),
                    has_table_privilege('{role}', 'public.secrets', 'SELECT'), has_table_privilege('{role}', 'shop.items', 'INSERT'),
                    has_table_privilege('{role}', 'public.notes', 'UPDATE,DELETE,TRUNCATE'), has_schema_privilege('{role}', 'shop', 'CREATE'))"
        ))
        .await;
    assert_eq!(privileges, vec![vec![Some("t,t,f,f,f,f".to_string())]], "SELECT on the published tables only");
    let comment = s
        .db
        .query_strings(&format!("SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = '{}'", s.publication))
        .await;
    let log: serde_json::Value = serde_json::from_str(comment[0][0].as_deref().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {comment:?}"));
    for file in ["001_publication.sql", "002_slot.sql", "003_role.sql", "004_grants.sql"] {
        assert!(log["pgcdc_setup"][file].as_str().is_some_and(|t| t.ends_with('Z')), "{file} not recorded: {log}");
    }

    // A second setup applies nothing and says so.
    let out = s.pgcdc(&cfg, &["setup", "--admin-url", &admin]).await;
    assert_success(&out, "setup again");
    let text = stdout(&out);
    assert!(text.contains("nothing to apply") && !text.contains("created") && !text.contains("granted"), "{text}");
    let again = s.pgcdc(&cfg, &["setup", "--print", "--admin-url", &admin]).await;
    assert_success(&again, "setup --print again");
    assert!(stdout(&again).trim().is_empty(), "nothing left to print: {}", describe(&again));

    // The job, as the role: check has no blocker, full load + CDC, validate, status.
    let out = s.pgcdc(&cfg, &["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    s.run_until_current(&cfg).await;
    s.db.exec(
        "UPDATE shop.items SET qty = qty + 100 WHERE id % 3 = 0;
         DELETE FROM shop.items WHERE id % 7 = 0;
         INSERT INTO public.notes VALUES (1000, repeat('x', 5000), NULL);
         UPDATE public.notes SET meta = '{\"b\": 2}' WHERE id < 10;
         DELETE FROM public.notes WHERE id = 20;
         UPDATE public.secrets SET card = 'none';",
    )
    .await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("shop", "items").await, 2000 - 285);
    assert_eq!(s.assert_matches_source("public", "notes").await, 50);
    assert!(!s.out().join("public").join("secrets").exists() && !s.table_dir("public", "secrets").exists(), "an unpublished table was written");
    let out = s.pgcdc(&cfg, &["validate"]).await;
    assert_eq!(out.status.code(), Some(0), "validate as the role: {}", describe(&out));
    let out = s.pgcdc(&cfg, &["status", "--json"]).await;
    assert_success(&out, "status as the role");
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(status["slot_exists"], true, "{status}");
    assert!(!describe(&out).contains(PASSWORD));
}

async fn role_count(s: &Setup, role: &str) -> usize {
    s.db.query_strings(&format!("SELECT rolname::text FROM pg_roles WHERE rolname = '{role}'")).await.len()
}
