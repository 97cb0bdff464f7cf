//! Which columns a row filter reads, found by scanning its SQL text.
//!
//! PostgreSQL accepts a publication row filter for updates and deletes only when every
//! column it reads is in the replica identity; pgcdc decides where a filter runs from the
//! columns this scan finds. The scan over-approximates on purpose: every identifier outside
//! string literals that names a column counts (also a function or type spelled like one),
//! so a filter is never wrongly taken to be covered by the identity.

/// The names in `columns` that `expr` mentions, in `columns` order. Unquoted identifiers
/// fold to lower case as PostgreSQL folds them; `"quoted"` ones are exact. String literals
/// (`'…'`, `E'…'`, `$tag$…$tag$`) and comments are skipped.
pub fn referenced_columns<'a>(expr: &str, columns: &[&'a str]) -> Vec<&'a str> {
    let idents = identifiers(expr);
    columns.iter().copied().filter(|c| idents.iter().any(|i| i == c)).collect()
}

fn identifiers(expr: &str) -> Vec<String> {
    let b: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\'' || ((c == 'E' || c == 'e') && b.get(i + 1) == Some(&'\'')) {
            // A string literal; E'' strings escape with backslashes, all with ''.
            let escapes = c != '\'';
            i += if escapes { 2 } else { 1 };
            while i < b.len() {
                if escapes && b[i] == '\\' {
                    i += 2;
                    continue;
                }
                if b[i] == '\'' {
                    if b.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' {
            let mut name = String::new();
            i += 1;
            while i < b.len() {
                if b[i] == '"' {
                    if b.get(i + 1) == Some(&'"') {
                        name.push('"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push(name);
        } else if c == '$' && (b.get(i + 1).is_some_and(|n| *n == '$' || n.is_alphabetic() || *n == '_')) {
            // Dollar quoting: $tag$ … $tag$ (a `$1` parameter is not one).
            let start = i;
            let mut j = i + 1;
            while j < b.len() && b[j] != '$' && (b[j].is_alphanumeric() || b[j] == '_') {
                j += 1;
            }
            if b.get(j) != Some(&'$') {
                i += 1;
                continue;
            }
            let tag: String = b[start..=j].iter().collect();
            let rest: String = b[j + 1..].iter().collect();
            match rest.find(&tag) {
                Some(end) => i = j + 1 + rest[..end].chars().count() + tag.chars().count(),
                None => i = b.len(),
            }
        } else if c == '-' && b.get(i + 1) == Some(&'-') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$') {
                i += 1;
            }
            out.push(b[start..i].iter().collect::<String>().to_lowercase());
        } else if c.is_ascii_digit() {
            // A number, with a possible exponent or a trailing identifier-like suffix.
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '.' || b[i] == '_') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_columns_outside_literals() {
        let cols = ["id", "country", "Note", "qty", "created"];
        assert_eq!(referenced_columns("country = 'NG'", &cols), ["country"]);
        assert_eq!(referenced_columns("COUNTRY IN ('id', E'qty\\' id') AND qty > 1", &cols), ["country", "qty"]);
        assert_eq!(referenced_columns("\"Note\" IS NOT NULL -- id\n", &cols), ["Note"]);
        assert_eq!(referenced_columns("note = $x$ id $x$ /* qty */", &cols), Vec::<&str>::new());
        assert_eq!(referenced_columns("created > '2024-01-01'::date and 1e3 < 5", &cols), ["created"]);
        assert_eq!(referenced_columns("country = 'it''s id'", &cols), ["country"]);
    }
}
