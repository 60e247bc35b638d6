//! Printing resources: a table for people, YAML or JSON for programs (the
//! proto3 JSON mapping with the .proto field names).

use clap::ValueEnum;
use serde_json::Value;

use super::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Yaml,
    Json,
}

/// One column of a table: its header, the field it shows (a dotted path)
/// and how.
pub struct Column {
    pub header: &'static str,
    pub field: &'static str,
    pub show: Show,
}

pub enum Show {
    /// As it is.
    Text,
    /// Resource names by their last segment, the id.
    Ids,
    /// An enum's value without its type's prefix (`AGREEMENT_KIND_`).
    Enum(&'static str),
}

pub const fn text(header: &'static str, field: &'static str) -> Column {
    Column {
        header,
        field,
        show: Show::Text,
    }
}

pub const fn ids(header: &'static str, field: &'static str) -> Column {
    Column {
        header,
        field,
        show: Show::Ids,
    }
}

pub const fn enumeration(
    header: &'static str,
    field: &'static str,
    prefix: &'static str,
) -> Column {
    Column {
        header,
        field,
        show: Show::Enum(prefix),
    }
}

/// Prints `items` (or the one item, when `single`) in `format`.
pub fn print(
    items: &[Value],
    single: bool,
    format: Format,
    columns: &[Column],
) -> Result<(), Failure> {
    match format {
        Format::Table => {
            print!("{}", table(items, columns));
            Ok(())
        }
        Format::Json => {
            let value = if single {
                items[0].clone()
            } else {
                Value::Array(items.to_vec())
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("JSON values print")
            );
            Ok(())
        }
        Format::Yaml => {
            let value = if single {
                items[0].clone()
            } else {
                Value::Array(items.to_vec())
            };
            print!("{}", yaml(&value)?);
            Ok(())
        }
    }
}

pub fn yaml(value: &Value) -> Result<String, Failure> {
    serde_saphyr::to_string(value)
        .map_err(|e| Failure::Input(format!("error: cannot write YAML: {e}")))
}

/// Aligned columns, headers first.
pub fn table(items: &[Value], columns: &[Column]) -> String {
    let mut rows: Vec<Vec<String>> = vec![columns.iter().map(|c| c.header.to_string()).collect()];
    for item in items {
        rows.push(columns.iter().map(|c| cell(item, c)).collect());
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, value) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(value);
            } else {
                line.push_str(&format!("{value:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn cell(item: &Value, column: &Column) -> String {
    let mut value = item;
    for part in column.field.split('.') {
        match value.get(part) {
            Some(v) => value = v,
            None => return String::new(),
        }
    }
    let show = |v: &Value| -> String {
        match (v, &column.show) {
            (Value::String(s), Show::Ids) => s.rsplit('/').next().unwrap_or(s).to_string(),
            (Value::String(s), Show::Enum(prefix)) => {
                s.strip_prefix(prefix).unwrap_or(s).to_string()
            }
            (Value::String(s), _) => s.clone(),
            (Value::Null, _) => String::new(),
            (other, _) => other.to_string(),
        }
    };
    match value {
        Value::Array(values) => values.iter().map(show).collect::<Vec<_>>().join(","),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", show(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => show(other),
    }
}
