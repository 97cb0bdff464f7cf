//! `${VAR}` substitution from the environment, done on the raw text before parsing.

use crate::error::{Error, Result};

/// Replaces every `${NAME}` with the environment variable's value. `$${` escapes a literal
/// `${`. A variable that is not set is a configuration error naming it.
pub fn substitute(raw: &str) -> Result<String> {
    substitute_with(raw, |name| std::env::var(name).ok())
}

/// [`substitute`] with the variables looked up by `lookup` instead of the process
/// environment (tests use it to fill placeholders without touching the environment).
pub fn substitute_with(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::config("unterminated `${` in configuration").with_hint("write ${NAME}"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::config(format!("`${{{name}}}` is not a valid variable reference")));
        }
        let value = lookup(name).ok_or_else(|| {
            Error::config(format!("environment variable {name} is not set (used as ${{{name}}})"))
                .with_hint(format!("export {name}=... before starting pgcdc"))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
