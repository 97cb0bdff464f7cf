//! `source.tables` patterns: `schema.table` with `*` matching any run of characters.

/// The tables a configuration selects. Built from `source.tables`; an empty list selects all.
pub struct TableFilter {
    patterns: Vec<(String, String)>,
}

impl TableFilter {
    pub fn new(patterns: &[String]) -> TableFilter {
        TableFilter {
            patterns: patterns
                .iter()
                .map(|p| match p.split_once('.') {
                    Some((s, t)) => (s.to_string(), t.to_string()),
                    None => ("*".to_string(), p.to_string()),
                })
                .collect(),
        }
    }

    /// True when no pattern is configured or one matches.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|(s, t)| glob(s, schema) && glob(t, table))
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let f = TableFilter::new(&["public.*".into(), "sales.order*".into(), "audit".into()]);
        assert!(f.matches("public", "anything"));
        assert!(f.matches("sales", "orders"));
        assert!(!f.matches("sales", "customers"));
        assert!(f.matches("other", "audit"));
        assert!(!f.matches("other", "audit2"));
        assert!(TableFilter::new(&[]).matches("x", "y"));
    }
}
