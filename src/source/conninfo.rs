//! Connection parameters from a libpq-style URL plus the `PG*` environment variables.
//!
//! Supported URL parameters: `sslmode` (disable, allow, prefer, require, verify-ca,
//! verify-full), `sslrootcert`, `application_name`, `connect_timeout`. Unknown parameters are a
//! configuration error rather than silently ignored. The password never appears in
//! [`ConnInfo::redacted`] or in `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// libpq's spelling (`verify-full`), so a redacted URL can be pasted back.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::config(format!("unknown sslmode `{other}`"))
                    .with_hint("use disable, allow, prefer, require, verify-ca or verify-full"))
            }
        })
    }
}

#[derive(Clone)]
pub struct ConnInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub application_name: String,
    pub connect_timeout: Duration,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The session settings pgcdc needs so that text values have one known form.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, YMD"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

impl ConnInfo {
    /// Parses `url` (may be `None`: then only `PG*` variables and defaults are used).
    pub fn from_url(url: Option<&str>) -> Result<ConnInfo> {
        Self::from_url_with_env(url, &|k| std::env::var(k).ok())
    }

    pub fn from_url_with_env(url: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<ConnInfo> {
        let mut info = ConnInfo {
            host: env("PGHOST").unwrap_or_else(|| "localhost".into()),
            port: 5432,
            user: env("PGUSER").or_else(|| env("USER")).unwrap_or_else(|| "postgres".into()),
            password: env("PGPASSWORD"),
            dbname: String::new(),
            sslmode: SslMode::Prefer,
            sslrootcert: env("PGSSLROOTCERT").map(PathBuf::from),
            application_name: "pgcdc".into(),
            connect_timeout: Duration::from_secs(10),
        };
        if let Some(p) = env("PGPORT") {
            info.port = p.parse().map_err(|_| Error::config(format!("PGPORT `{p}` is not a port number")))?;
        }
        if let Some(m) = env("PGSSLMODE") {
            info.sslmode = SslMode::parse(&m)?;
        }
        let mut dbname = env("PGDATABASE");
        if let Some(url) = url {
            let parsed = url::Url::parse(url).map_err(|e| {
                Error::config(format!("source.url is not a valid URL: {e}"))
                    .with_hint("write postgres://user@host:5432/dbname?sslmode=verify-full")
            })?;
            if !matches!(parsed.scheme(), "postgres" | "postgresql") {
                return Err(Error::config(format!("source.url must start with postgres:// (got {}://)", parsed.scheme()))
                    .with_hint("write postgres://user@host:5432/dbname?sslmode=verify-full"));
            }
            if let Some(h) = parsed.host_str() {
                if !h.is_empty() {
                    info.host = h.trim_start_matches('[').trim_end_matches(']').to_string();
                }
            }
            if let Some(p) = parsed.port() {
                info.port = p;
            }
            if !parsed.username().is_empty() {
                info.user = percent(parsed.username());
            }
            if let Some(pw) = parsed.password() {
                info.password = Some(percent(pw));
            }
            let path = parsed.path().trim_start_matches('/');
            if !path.is_empty() {
                dbname = Some(percent(path));
            }
            for (k, v) in parsed.query_pairs() {
                match k.as_ref() {
                    "sslmode" => info.sslmode = SslMode::parse(&v)?,
                    "sslrootcert" => info.sslrootcert = Some(PathBuf::from(v.as_ref())),
                    "application_name" => info.application_name = v.to_string(),
                    "connect_timeout" => {
                        let secs: u64 = v
                            .parse()
                            .map_err(|_| Error::config(format!("connect_timeout `{v}` is not a number of seconds")))?;
                        info.connect_timeout = Duration::from_secs(secs.max(1));
                    }
                    "host" => info.host = v.to_string(),
                    "port" => {
                        info.port = v.parse().map_err(|_| Error::config(format!("port `{v}` is not a port number")))?
                    }
                    "user" => info.user = v.to_string(),
                    "password" => info.password = Some(v.to_string()),
                    "dbname" => dbname = Some(v.to_string()),
                    other => {
                        return Err(Error::config(format!("source.url: unsupported parameter `{other}`"))
                            .with_hint("supported: sslmode, sslrootcert, application_name, connect_timeout, host, port, user, password, dbname"))
                    }
                }
            }
        }
        info.dbname = dbname.unwrap_or_else(|| info.user.clone());
        if info.sslrootcert.is_none() && matches!(info.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
            // libpq's default location.
            if let Some(home) = env("HOME") {
                let p = PathBuf::from(home).join(".postgresql/root.crt");
                if p.exists() {
                    info.sslrootcert = Some(p);
                }
            }
        }
        Ok(info)
    }

    /// `postgres://user@host:port/db?sslmode=...` without the password: safe to log.
    pub fn redacted(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}?sslmode={}",
            self.user,
            self.host,
            self.port,
            self.dbname,
            self.sslmode.as_str()
        )
    }

    /// An ordinary (non-replication) `tokio_postgres::Config` for the same server.
    pub fn sql_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .connect_timeout(self.connect_timeout)
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        if let Some(pw) = &self.password {
            c.password(pw);
        }
        let opts: Vec<String> = SESSION_SETTINGS
            .iter()
            .map(|(k, v)| format!("-c {}={}", k, v.replace(' ', "\\ ")))
            .collect();
        c.options(opts.join(" "));
        c
    }
}

fn percent(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn url_fields_and_redaction() {
        let c = ConnInfo::from_url_with_env(
            Some("postgres://app:s%40cret@db.internal:6543/shop?sslmode=verify-full&sslrootcert=/ca.pem"),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.host, "db.internal");
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "app");
        assert_eq!(c.password.as_deref(), Some("s@cret"));
        assert_eq!(c.dbname, "shop");
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert, Some(PathBuf::from("/ca.pem")));
        assert!(!c.redacted().contains("cret"));
        assert_eq!(c.redacted(), "postgres://app@db.internal:6543/shop?sslmode=verify-full");
        assert!(!format!("{c:?}").contains("cret"));
    }

    #[test]
    fn env_fills_gaps_and_url_wins() {
        let env = |k: &str| match k {
            "PGHOST" => Some("envhost".to_string()),
            "PGUSER" => Some("envuser".to_string()),
            "PGPASSWORD" => Some("pw".to_string()),
            "PGDATABASE" => Some("envdb".to_string()),
            _ => None,
        };
        let c = ConnInfo::from_url_with_env(None, &env).unwrap();
        assert_eq!((c.host.as_str(), c.user.as_str(), c.dbname.as_str()), ("envhost", "envuser", "envdb"));
        let c = ConnInfo::from_url_with_env(Some("postgres://u@h/d"), &env).unwrap();
        assert_eq!((c.host.as_str(), c.user.as_str(), c.dbname.as_str()), ("h", "u", "d"));
        assert_eq!(c.password.as_deref(), Some("pw"));
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for bad in ["mysql://x/y", "postgres://h/d?sslmode=maybe", "postgres://h/d?frobnicate=1", "::"] {
            let e = ConnInfo::from_url_with_env(Some(bad), &no_env).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
