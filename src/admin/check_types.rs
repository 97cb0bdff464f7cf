//! `check` finding about column types: the published columns whose type has no native
//! Arrow mapping (SPEC 5.4) and that are therefore written as their PostgreSQL text form
//! (enums, composites, ranges, geometric and network types, extension types, and arrays
//! of them). Not a blocker: the value is exact, but a reader gets a string.

use super::check::{item, CheckItem, Level};
use crate::error::Result;
use crate::model::PgType;
use crate::source::catalog::Catalog;

/// Resolves every published table's columns exactly as `run` does ([`Catalog::table_schema`])
/// and returns one warning naming the text-mapped columns, or one ok line.
/// `tables`: the publication's tables as [`Catalog::publication_tables`] lists them.
pub async fn text_mapped(catalog: &Catalog, tables: &[(String, String, String, bool)]) -> Result<Vec<CheckItem>> {
    let mut found = Vec::new();
    for (schema, table, _, _) in tables {
        let t = catalog.table_schema(schema, table).await?;
        for c in &t.columns {
            if let Some(name) = text_form_type(&c.pg_type) {
                found.push(format!("{schema}.{table}.{} ({name})", c.name));
            }
        }
    }
    if found.is_empty() {
        return Ok(vec![item(Level::Ok, "column types", "every published column has a native mapping", None)]);
    }
    Ok(vec![item(
        Level::Warn,
        "column types",
        format!("written as their PostgreSQL text form (Utf8), no native Arrow type: {}", found.join(", ")),
        Some("fine for exact values; cast in the reader, or change the column type on the source if readers need a native type"),
    )])
}

/// The type name when values of this type are written as text for want of a native mapping.
fn text_form_type(t: &PgType) -> Option<String> {
    match t {
        PgType::Other(name) => Some(name.clone()),
        PgType::Array { element, .. } => text_form_type(element).map(|e| format!("{e}[]")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_types_without_a_native_mapping_are_named() {
        assert_eq!(text_form_type(&PgType::Other("inet".into())), Some("inet".into()));
        let arr = PgType::Array { element: Box::new(PgType::Other("mood".into())), delimiter: b',' };
        assert_eq!(text_form_type(&arr), Some("mood[]".into()));
        assert_eq!(text_form_type(&PgType::Array { element: Box::new(PgType::Int4), delimiter: b',' }), None);
        assert_eq!(text_form_type(&PgType::Text), None);
        assert_eq!(text_form_type(&PgType::NumericText), None);
    }
}
