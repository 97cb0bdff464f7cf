//! One throwaway PostgreSQL cluster per test process, and fresh databases inside it.
//!
//! The cluster is the library's `pgcdc::demo::cluster::LocalCluster` (which alone runs
//! `initdb` / `pg_ctl`, as `postgres` via `runuser` when we are root, in a short temp dir, on
//! 127.0.0.1 at a free port and on a unix socket in that dir, `wal_level=logical`,
//! `fsync=off`), plus what only the tests need:
//! * binaries from `$PGCDC_PG_BINDIR` when set, else where the library finds them;
//! * 100 slots / wal senders, 300 connections, 20 prepared transactions,
//!   `logical_decoding_work_mem=64kB` (so big transactions are streamed);
//! * `ssl=on` with a throwaway CA ([`PgCluster::ca_cert_path`]) and a server certificate for
//!   `localhost` / 127.0.0.1;
//! * pg_hba: `scram_user` → scram-sha-256, `md5_user` → md5, everyone else trust (both for
//!   databases and `replication`, for `hostssl` and `host`);
//! * roles: `scram_user` / 'scram-secret' and `md5_user` / 'md5-secret' (LOGIN REPLICATION
//!   SUPERUSER), `norepl_user` (LOGIN only, no password).
//!
//! A detached watchdog stops the server (`pg_ctl stop -m immediate`) and deletes the dir once
//! the test process has exited (the cluster lives in a `static`, which is never dropped).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pgcdc::demo::cluster::{find_bindir, LocalCluster};

use super::util::{run_checked, sanitize_ident, shell_quote, spawn_watchdog, unique_suffix};

/// The superuser created by initdb (`-U postgres`).
pub const ADMIN_USER: &str = "postgres";
pub const SCRAM_USER: &str = "scram_user";
pub const SCRAM_PASSWORD: &str = "scram-secret";
pub const MD5_USER: &str = "md5_user";
pub const MD5_PASSWORD: &str = "md5-secret";
pub const NOREPL_USER: &str = "norepl_user";

/// The settings the tests add to the library's (see the module doc).
const TEST_CONF: &str = r#"
# ---- pgcdc test harness ----
max_replication_slots = 100
max_wal_senders = 100
max_connections = 300
max_prepared_transactions = 20
max_locks_per_transaction = 256
logical_decoding_work_mem = '64kB'
wal_sender_timeout = '20s'
full_page_writes = off
shared_buffers = '128MB'
timezone = 'UTC'
log_timezone = 'UTC'
ssl = on
ssl_cert_file = '{dir}/server.crt'
ssl_key_file = '{dir}/server.key'
ssl_ca_file = '{dir}/ca.crt'
log_line_prefix = '%m [%p] %q%u@%d '
"#;

pub struct PgCluster {
    local: LocalCluster,
    version_num: u32,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.local.dir())
            .field("port", &self.local.port)
            .finish()
    }
}

static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();

/// The cluster of this test process, started on first use.
///
/// Blocking (a second or two the first time). From async code prefer [`fresh_db`], which
/// starts it off the runtime's thread.
pub fn pg() -> &'static PgCluster {
    match CLUSTER.get_or_init(|| {
        std::panic::catch_unwind(PgCluster::start).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())
        })
    }) {
        Ok(c) => c,
        Err(msg) => panic!("the test PostgreSQL cluster could not be started:\n{msg}"),
    }
}

impl PgCluster {
    pub fn port(&self) -> u16 {
        self.local.port
    }

    /// Always `127.0.0.1` (the server listens only there).
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// `postgres://user@127.0.0.1:port/db` (no password: every user but scram_user/md5_user is trusted).
    pub fn url(&self, db: &str, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port())
    }

    /// `postgres://user:password@127.0.0.1:port/db`.
    pub fn url_with_password(&self, db: &str, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{db}",
            self.port()
        )
    }

    /// URL of the superuser `postgres` for `db`.
    pub fn admin_url(&self, db: &str) -> String {
        self.url(db, ADMIN_USER)
    }

    pub fn admin_user(&self) -> &'static str {
        ADMIN_USER
    }

    /// The CA that signed the server certificate (use as `sslrootcert`).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.local.dir().join("ca.crt")
    }

    pub fn server_cert_path(&self) -> PathBuf {
        self.local.dir().join("server.crt")
    }

    /// Directory of the unix socket (also the cluster's temp dir).
    pub fn socket_dir(&self) -> &Path {
        self.local.dir()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.local.data_dir()
    }

    pub fn bindir(&self) -> &Path {
        self.local.bindir()
    }

    /// `server_version_num`, e.g. 150018.
    pub fn version_num(&self) -> u32 {
        self.version_num
    }

    pub fn log_path(&self) -> PathBuf {
        self.local.log_path()
    }

    /// The server log so far (for assertion messages).
    pub fn log_contents(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("<no server log: {e}>"))
    }

    /// `psql -X -At -v ON_ERROR_STOP=1` connected over the unix socket as `postgres` to `db`.
    /// Add `-c SQL` (or other arguments) and run it.
    pub fn psql(&self, db: &str) -> Command {
        let mut cmd = Command::new(self.bindir().join("psql"));
        cmd.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port().to_string(), "-U", ADMIN_USER, "-d", db])
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env_remove("PGSSLMODE")
            .env_remove("PGOPTIONS");
        cmd
    }

    /// Runs `sql` with psql as `postgres` in `db`; returns stdout (unaligned, tuples only).
    /// Panics with psql's output and the server log on failure.
    pub fn psql_exec(&self, db: &str, sql: &str) -> String {
        let out = self
            .psql(db)
            .arg("-c")
            .arg(sql)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run psql");
        if !out.status.success() {
            panic!(
                "psql failed on {db}: {sql}\n{}\n--- server log ---\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log_contents()
            );
        }
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    fn start() -> PgCluster {
        let bindir = match std::env::var_os("PGCDC_PG_BINDIR") {
            Some(dir) if Path::new(&dir).join("initdb").exists() => PathBuf::from(dir),
            _ => find_bindir().unwrap_or_else(|e| {
                panic!("{e}. Run `make test` (it installs them), or set PGCDC_PG_BINDIR.")
            }),
        };
        let mut local = must(LocalCluster::create(bindir), "the test cluster's directory");
        // Watchdog first, so the dir is removed even when the start below fails.
        spawn_watchdog(&format!(
            "{} >/dev/null 2>&1; rm -rf {}",
            local.stop_shell_command(),
            shell_quote(&local.dir().to_string_lossy())
        ));

        make_certs(local.dir());
        must(local.init(), "initdb");
        must(
            local.append_conf(&TEST_CONF.replace("{dir}", &local.dir().to_string_lossy())),
            "postgresql.conf",
        );

        // Order matters: the first matching line wins.
        let mut hba = String::from(
            "# ---- pgcdc test harness ----\n\
             local all all trust\n\
             local replication all trust\n",
        );
        for kind in ["hostssl", "host"] {
            for db in ["all", "replication"] {
                for addr in ["127.0.0.1/32", "::1/128"] {
                    hba.push_str(&format!("{kind} {db} {SCRAM_USER} {addr} scram-sha-256\n"));
                    hba.push_str(&format!("{kind} {db} {MD5_USER} {addr} md5\n"));
                    hba.push_str(&format!("{kind} {db} all {addr} trust\n"));
                }
            }
        }
        must(local.write_hba(&hba), "pg_hba.conf");
        if let Err(e) = local.start_server() {
            panic!(
                "{e}\n--- server log ({}) ---\n{}",
                local.log_path().display(),
                std::fs::read_to_string(local.log_path()).unwrap_or_default()
            );
        }

        let mut cluster = PgCluster {
            local,
            version_num: 0,
        };
        cluster.psql_exec(
            "postgres",
            &format!(
                "SET password_encryption = 'scram-sha-256';\n\
                 CREATE ROLE {SCRAM_USER} LOGIN REPLICATION SUPERUSER PASSWORD '{SCRAM_PASSWORD}';\n\
                 SET password_encryption = 'md5';\n\
                 CREATE ROLE {MD5_USER} LOGIN REPLICATION SUPERUSER PASSWORD '{MD5_PASSWORD}';\n\
                 RESET password_encryption;\n\
                 CREATE ROLE {NOREPL_USER} LOGIN;"
            ),
        );
        cluster.version_num = cluster
            .psql_exec("postgres", "SHOW server_version_num")
            .parse()
            .expect("server_version_num");
        cluster
    }

    /// Stops the server now (`-m fast`). For tests of what pgcdc does when the source goes
    /// away; [`PgCluster::restart`] brings it back on the same port.
    pub fn stop(&self) {
        if let Err(e) = self.local.stop_server("fast") {
            panic!(
                "pg_ctl stop: {e}\n--- server log ---\n{}",
                self.log_contents()
            );
        }
    }

    /// Stops the server with `pg_ctl stop -m MODE` (`fast`, `immediate`: a crash, recovery
    /// at the next start).
    pub fn stop_with(&self, mode: &str) {
        if let Err(e) = self.local.stop_server(mode) {
            panic!("pg_ctl stop -m {mode}: {e}\n--- server log ---\n{}", self.log_contents());
        }
    }

    /// Starts the server again after [`PgCluster::stop`] (same port, same data).
    pub fn start_again(&self) {
        if let Err(e) = self.local.start_again() {
            panic!(
                "pg_ctl start: {e}\n--- server log ---\n{}",
                self.log_contents()
            );
        }
    }

    /// `pg_ctl restart -m fast` on the same port.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Reloads the configuration (after `ALTER SYSTEM`).
    pub fn reload(&self) {
        self.psql_exec("postgres", "SELECT pg_reload_conf()");
    }
}

/// The value, or a panic naming `what` (the harness fails loudly, it never skips).
fn must<T>(result: pgcdc::error::Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A throwaway CA and a server certificate for `localhost` / 127.0.0.1 / ::1 (EC P-256,
/// v3 extensions strict enough for rustls/webpki).
fn make_certs(dir: &Path) {
    let openssl = |args: &[&str], what: &str| {
        run_checked(Command::new("openssl").args(args).current_dir(dir), what);
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca_args = vec!["req", "-x509"];
    ca_args.extend_from_slice(&ec);
    ca_args.extend_from_slice(&[
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=pgcdc test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(
        &ca_args,
        "openssl: create test CA (is the openssl CLI installed? `make test` installs it)",
    );

    let mut csr_args = vec!["req", "-new"];
    csr_args.extend_from_slice(&ec);
    csr_args.extend_from_slice(&[
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&csr_args, "openssl: create server key");

    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
         subjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid,issuer\n",
    )
    .expect("write server.ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "3650",
            "-extfile",
            "server.ext",
        ],
        "openssl: sign server certificate",
    );
    use std::os::unix::fs::PermissionsExt;
    for key in ["server.key", "ca.key"] {
        std::fs::set_permissions(dir.join(key), std::fs::Permissions::from_mode(0o600))
            .expect("chmod key");
    }
}

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name (unique on the cluster).
    pub name: String,
    /// Superuser (`postgres`) URL of this database, no TLS parameters.
    pub url: String,
    pub cluster: &'static PgCluster,
}

/// Creates a new database named after `name_hint` (plus a counter and the pid), so tests can
/// run in parallel on the shared cluster. Starts the cluster if needed.
pub async fn fresh_db(name_hint: &str) -> TestDb {
    let cluster = match tokio::task::spawn_blocking(pg).await {
        Ok(c) => c,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("starting the cluster: {e}"),
    };
    let name = format!("{}_{}", sanitize_ident(name_hint, 40), unique_suffix());
    let admin = connect(&cluster.admin_url("postgres")).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    TestDb {
        url: cluster.admin_url(&name),
        name,
        cluster,
    }
}

/// Connects without TLS and drives the connection on the current runtime.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    try_connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Like [`connect`] but returns the error (for tests of rejected logins).
pub async fn try_connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

impl TestDb {
    /// `postgres://user@127.0.0.1:port/<this db>`.
    pub fn url_as(&self, user: &str) -> String {
        self.cluster.url(&self.name, user)
    }

    /// `postgres://user:password@127.0.0.1:port/<this db>`.
    pub fn url_with_password(&self, user: &str, password: &str) -> String {
        self.cluster.url_with_password(&self.name, user, password)
    }

    /// A name no other test uses: `<prefix>_<counter>_<pid>` (for slots, publications, dirs).
    pub fn unique(&self, prefix: &str) -> String {
        format!("{}_{}", sanitize_ident(prefix, 30), unique_suffix())
    }

    /// A superuser client on this database (NoTls; the connection runs on the current runtime).
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// A client on this database as `user` (trusted users only; see [`PgCluster`]).
    pub async fn client_as(&self, user: &str) -> tokio_postgres::Client {
        connect(&self.url_as(user)).await
    }

    /// Runs one or more statements (simple query protocol); panics with the error.
    pub async fn exec(&self, sql: &str) {
        let c = self.client().await;
        if let Err(e) = c.batch_execute(sql).await {
            panic!("SQL failed on {}: {}\n{sql}", self.name, describe_error(&e));
        }
    }

    /// Rows of the last statement's result as text (simple query protocol), NULL as `None`.
    pub async fn query_strings(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let c = self.client().await;
        let msgs = c.simple_query(sql).await.unwrap_or_else(|e| {
            panic!(
                "query failed on {}: {}\n{sql}",
                self.name,
                describe_error(&e)
            )
        });
        let mut rows = Vec::new();
        for m in msgs {
            match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                // A new result set: keep only the last statement's rows.
                tokio_postgres::SimpleQueryMessage::RowDescription(_) => rows.clear(),
                _ => {}
            }
        }
        rows
    }

    /// First column of the first row (panics if there is no row).
    pub async fn query_scalar(&self, sql: &str) -> Option<String> {
        let rows = self.query_strings(sql).await;
        let row = rows
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no row from: {sql}"));
        row.into_iter().next().flatten()
    }

    /// `SELECT count(*) FROM <table>`.
    pub async fn count(&self, table: &str) -> i64 {
        self.query_scalar(&format!("SELECT count(*) FROM {table}"))
            .await
            .expect("count is never null")
            .parse()
            .expect("count is an integer")
    }

    /// The end of WAL inserted so far: every committed transaction ends before it. (With
    /// `synchronous_commit = off`, `pg_current_wal_lsn()`, the write position, can lag a
    /// commit that just returned.)
    pub async fn current_lsn(&self) -> String {
        self.query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .await
            .expect("lsn")
    }

    /// `CREATE PUBLICATION name FOR <tables_sql>`. `tables_sql` is either a full target
    /// (`ALL TABLES`, `TABLE a, b`, `TABLES IN SCHEMA s`) or just a table list (`a, b`),
    /// which gets `TABLE ` put in front.
    pub async fn create_publication(&self, name: &str, tables_sql: &str) {
        let t = tables_sql.trim();
        let upper = t.to_ascii_uppercase();
        let target = if upper.starts_with("ALL TABLES")
            || upper.starts_with("TABLE ")
            || upper.starts_with("TABLES ")
        {
            t.to_string()
        } else {
            format!("TABLE {t}")
        };
        self.exec(&format!("CREATE PUBLICATION \"{name}\" FOR {target}"))
            .await;
    }

    /// Names of the replication slots of this database, sorted.
    pub async fn slot_names(&self) -> Vec<String> {
        self.query_strings(&format!(
            "SELECT slot_name FROM pg_replication_slots WHERE database = '{}' ORDER BY 1",
            self.name
        ))
        .await
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect()
    }

    /// `confirmed_flush_lsn` of a slot, `None` if the slot does not exist.
    pub async fn slot_confirmed_lsn(&self, slot: &str) -> Option<String> {
        self.query_strings(&format!(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ))
        .await
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
    }
}

/// Error text including the server's message, detail and hint when there is one.
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {}){}{}",
            db.severity(),
            db.message(),
            db.code().code(),
            db.detail()
                .map(|d| format!("\nDETAIL: {d}"))
                .unwrap_or_default(),
            db.hint()
                .map(|h| format!("\nHINT: {h}"))
                .unwrap_or_default()
        ),
        None => e.to_string(),
    }
}
