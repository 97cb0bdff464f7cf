//! Parser of PostgreSQL array literals as `array_out` writes them: `{1,2,NULL}`,
//! `{"a b","c\"d",NULL,"NULL",""}`.
//!
//! Only one-dimensional arrays with the default lower bound map to an Arrow List; nested
//! braces (`{{1,2},{3,4}}`) and explicit bounds (`[0:2]={...}`) are errors, never flattened.

/// Calls `element` for each element of a one-dimensional array literal, in order: `None` for
/// an unquoted `NULL`, otherwise the element's text with quotes and backslash escapes
/// removed (a quoted `"NULL"` is the string). Unquoted elements are trimmed of surrounding
/// whitespace. `buf` is scratch space for unescaping.
pub fn for_each_element(
    text: &[u8],
    delimiter: u8,
    buf: &mut Vec<u8>,
    mut element: impl FnMut(Option<&[u8]>) -> Result<(), String>,
) -> Result<(), String> {
    let malformed = |why: &str| Err(format!("malformed array literal: {why}"));
    let mut i = skip_ws(text, 0);
    match text.get(i) {
        Some(b'[') => {
            return Err("array with explicit bounds (`[lower:upper]={...}`) is not supported: only \
                        one-dimensional arrays starting at index 1 map to an Arrow list"
                .into())
        }
        Some(b'{') => i += 1,
        _ => return malformed("does not start with `{`"),
    }
    i = skip_ws(text, i);
    if text.get(i) == Some(&b'}') {
        return if skip_ws(text, i + 1) == text.len() { Ok(()) } else { malformed("text after `}`") };
    }
    loop {
        i = skip_ws(text, i);
        match text.get(i) {
            None => return malformed("missing `}`"),
            Some(b'{') => {
                return Err("multi-dimensional array is not supported: only one-dimensional arrays map \
                            to an Arrow list"
                    .into())
            }
            Some(b'"') => {
                buf.clear();
                i += 1;
                loop {
                    match text.get(i) {
                        None => return malformed("unterminated quoted element"),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let &c = text.get(i + 1).ok_or("malformed array literal: trailing backslash")?;
                            buf.push(c);
                            i += 2;
                        }
                        Some(&c) => {
                            buf.push(c);
                            i += 1;
                        }
                    }
                }
                element(Some(&buf[..]))?;
                i = skip_ws(text, i);
            }
            Some(_) => {
                let start = i;
                let mut escaped = false;
                while let Some(&c) = text.get(i) {
                    if c == delimiter || c == b'}' {
                        break;
                    }
                    match c {
                        b'"' | b'{' => return malformed("unexpected quote or brace inside an element"),
                        b'\\' => {
                            escaped = true;
                            i += 2;
                        }
                        _ => i += 1,
                    }
                }
                if i > text.len() {
                    return malformed("trailing backslash");
                }
                let raw = trim_end(&text[start..i]);
                if raw.is_empty() {
                    return malformed("empty unquoted element");
                }
                if escaped {
                    buf.clear();
                    let mut j = 0;
                    while j < raw.len() {
                        if raw[j] == b'\\' && j + 1 < raw.len() {
                            j += 1;
                        }
                        buf.push(raw[j]);
                        j += 1;
                    }
                    element(Some(&buf[..]))?;
                } else if raw.eq_ignore_ascii_case(b"NULL") {
                    element(None)?;
                } else {
                    element(Some(raw))?;
                }
            }
        }
        match text.get(i) {
            Some(b'}') => {
                return if skip_ws(text, i + 1) == text.len() { Ok(()) } else { malformed("text after `}`") };
            }
            Some(&c) if c == delimiter => i += 1,
            _ => return malformed("expected a delimiter or `}`"),
        }
    }
}

/// The elements of a one-dimensional array literal as strings (`None` for NULL). A
/// convenience over [`for_each_element`] for callers outside the hot path.
pub fn split_array(text: &str, delimiter: u8) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for_each_element(text.as_bytes(), delimiter, &mut buf, |e| {
        out.push(e.map(|b| String::from_utf8_lossy(b).into_owned()));
        Ok(())
    })?;
    Ok(out)
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while i < text.len() && is_ws(text[i]) {
        i += 1;
    }
    i
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., c] = s {
        if is_ws(*c) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn els(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|e| e.map(str::to_string)).collect()
    }

    #[test]
    fn plain_elements_and_nulls() {
        assert_eq!(split_array("{1,2,NULL}", b','), Ok(els(&[Some("1"), Some("2"), None])));
        assert_eq!(split_array("{null,NuLl}", b','), Ok(els(&[None, None])));
        assert_eq!(split_array("{}", b','), Ok(vec![]));
        assert_eq!(split_array(" { } ", b','), Ok(vec![]));
        assert_eq!(split_array("{NULL}", b','), Ok(els(&[None])));
    }

    #[test]
    fn quoted_elements() {
        assert_eq!(
            split_array(r#"{"a b","c\"d",NULL,"NULL",""}"#, b','),
            Ok(els(&[Some("a b"), Some("c\"d"), None, Some("NULL"), Some("")]))
        );
        assert_eq!(
            split_array(r#"{"back\\slash","comma,inside","brace}{","\\N"}"#, b','),
            Ok(els(&[Some("back\\slash"), Some("comma,inside"), Some("brace}{"), Some("\\N")]))
        );
        assert_eq!(
            split_array("{\"2024-01-31 12:34:56+00\",\"line\nbreak\"}", b','),
            Ok(els(&[Some("2024-01-31 12:34:56+00"), Some("line\nbreak")]))
        );
        assert_eq!(split_array(r#"{"\\x0a0b"}"#, b','), Ok(els(&[Some("\\x0a0b")])));
        assert_eq!(split_array("{\"ünï\",ç}", b','), Ok(els(&[Some("ünï"), Some("ç")])));
    }

    #[test]
    fn unquoted_elements_are_trimmed_and_unescaped() {
        assert_eq!(split_array("{ a , b c ,d}", b','), Ok(els(&[Some("a"), Some("b c"), Some("d")])));
        assert_eq!(split_array(r"{a\,b,\NULL}", b','), Ok(els(&[Some("a,b"), Some("NULL")])));
    }

    #[test]
    fn custom_delimiter() {
        assert_eq!(
            split_array("{(1,1),(0,0);(2,2),(1,1);NULL}", b';'),
            Ok(els(&[Some("(1,1),(0,0)"), Some("(2,2),(1,1)"), None]))
        );
    }

    #[test]
    fn multi_dimensional_and_bounds_are_errors() {
        let e = split_array("{{1,2},{3,4}}", b',').unwrap_err();
        assert!(e.contains("multi-dimensional array"), "{e}");
        assert!(e.contains("not supported"), "{e}");
        let e = split_array("{1,{2}}", b',').unwrap_err();
        assert!(e.contains("multi-dimensional array"), "{e}");
        let e = split_array("[0:2]={1,2,3}", b',').unwrap_err();
        assert!(e.contains("explicit bounds"), "{e}");
        let e = split_array("[1:2][1:1]={{1},{2}}", b',').unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn malformed_literals() {
        for bad in ["", "1,2", "{1,2", "{1,,2}", "{1,2}x", r#"{"abc}"#, "{a\"b}", "{1,}", "{,}", "{a\\"] {
            assert!(split_array(bad, b',').is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn callback_errors_propagate() {
        let mut buf = Vec::new();
        let r = for_each_element(b"{1,x,3}", b',', &mut buf, |e| match e {
            Some(b"x") => Err("bad element".into()),
            _ => Ok(()),
        });
        assert_eq!(r, Err("bad element".into()));
    }
}
