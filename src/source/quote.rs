//! Quoting names and values for the SQL pgcdc sends (catalog queries, COPY, setup,
//! validate). Every part of pgcdc that builds SQL text quotes through these, so that odd
//! names (`"a/b"`, `..`, quotes, mixed case) reach PostgreSQL exactly as they are.

/// `"ident"`: an SQL identifier with embedded double quotes doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `"schema"."table"`, each part quoted with [`quote_ident`].
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// `'text'` as an SQL literal (standard_conforming_strings: only `'` is doubled).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_quoted() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(qualified("..", "a/b"), r#"".."."a/b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
