//! A small RFC 4180 reader for DMS's CSV files: comma-separated, fields optionally in double
//! quotes (a doubled quote inside is one quote, line breaks allowed inside), `\n` or `\r\n`
//! between records. It keeps what a generic CSV reader loses: whether a field was quoted,
//! so that an unquoted `null_value` (empty by default, DMS's `CsvNullValue`) reads as NULL
//! and a quoted `""` as the empty string (the convention of pgcdc's DMS CSV writer,
//! [`crate::sink::parquet::csv_writer`]).

/// One field as read: its text, and whether it was enclosed in quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub text: String,
    pub quoted: bool,
}

impl Field {
    /// The value: `None` (NULL) for an unquoted field equal to `null_value`.
    pub fn value(self, null_value: &str) -> Option<String> {
        if !self.quoted && self.text == null_value {
            None
        } else {
            Some(self.text)
        }
    }
}

/// Splits `text` into records of fields. Never fails: a quote left open runs to the end of
/// the text (the last field then holds the rest). An empty last line is not a record.
pub fn records(text: &str) -> Vec<Vec<Field>> {
    let mut out = Vec::new();
    let mut record: Vec<Field> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut started = false;
    while let Some(c) = chars.next() {
        started = true;
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                in_quotes = true;
                quoted = true;
            }
            ',' => record.push(Field {
                text: std::mem::take(&mut field),
                quoted: std::mem::take(&mut quoted),
            }),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(Field {
                    text: std::mem::take(&mut field),
                    quoted: std::mem::take(&mut quoted),
                });
                out.push(std::mem::take(&mut record));
                started = false;
            }
            _ => field.push(c),
        }
    }
    if started {
        record.push(Field {
            text: field,
            quoted,
        });
        out.push(record);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_nulls_and_line_breaks() {
        let r = records("I,1,,\"\",\"a,b\"\r\nU,2,\"x\"\"y\",\"l1\nl2\",NULL\n");
        assert_eq!(r.len(), 2);
        let vals: Vec<Option<String>> = r[0].iter().cloned().map(|f| f.value("")).collect();
        assert_eq!(
            vals,
            vec![
                Some("I".into()),
                Some("1".into()),
                None,
                Some(String::new()),
                Some("a,b".into())
            ]
        );
        let vals: Vec<Option<String>> = r[1].iter().cloned().map(|f| f.value("NULL")).collect();
        assert_eq!(
            vals,
            vec![
                Some("U".into()),
                Some("2".into()),
                Some("x\"y".into()),
                Some("l1\nl2".into()),
                None
            ]
        );
        assert_eq!(records("a,b").len(), 1, "a last line without a line break");
        assert!(records("").is_empty());
    }
}
