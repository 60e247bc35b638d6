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

/// `amount_minor` in the currency's major unit with its code: `1234.56 EUR`
/// (as many decimals as ISO 4217 gives the currency; none for `JPY`).
pub fn money(m: &crate::proto::v1::Money) -> String {
    let exponent = iso_currency::Currency::from_code(&m.currency_code)
        .and_then(|c| c.exponent())
        .unwrap_or(0) as u32;
    let sign = if m.amount_minor < 0 { "-" } else { "" };
    let minor = m.amount_minor.unsigned_abs();
    let amount = if exponent == 0 {
        minor.to_string()
    } else {
        let unit = 10u64.pow(exponent);
        format!(
            "{}.{:0width$}",
            minor / unit,
            minor % unit,
            width = exponent as usize
        )
    };
    format!("{sign}{amount} {}", m.currency_code)
}

/// A computed ratio or rate for people: at most six decimals, no trailing
/// zeros (`0.999`, not `0.9989999999999999`).
pub fn decimal(x: f64) -> String {
    let text = format!("{x:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Asks `question` on the terminal (stderr) and reads a yes or no from
/// stdin: `Some(true)` for `y`/`yes`, `Some(false)` for anything else, and
/// `None` without a terminal to ask on (the caller refuses then, naming its
/// `--yes`).
pub fn ask(question: &str) -> Result<Option<bool>, Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Usage(format!("error: cannot read the answer: {e}")))?;
    Ok(Some(matches!(
        answer.trim(),
        "y" | "Y" | "yes" | "YES" | "Yes"
    )))
}

/// An objective's window for a table: `rolling 30d`, `calendar month (UTC)`.
pub fn window(w: Option<&crate::proto::v1::Window>) -> String {
    use crate::proto::v1::window::Window;
    match w.and_then(|w| w.window.as_ref()) {
        Some(Window::Rolling(r)) => {
            let seconds = r.duration.as_ref().map_or(0, |d| d.seconds);
            format!("rolling {}", seconds_in_units(seconds))
        }
        Some(Window::Calendar(c)) => {
            let period = c.period().as_str_name();
            let period = period.trim_start_matches("CALENDAR_PERIOD_").to_lowercase();
            let zone = if c.time_zone.is_empty() {
                "UTC"
            } else {
                &c.time_zone
            };
            format!("calendar {period} ({zone})")
        }
        None => String::new(),
    }
}

/// Seconds in the largest unit that divides them: `30d`, `6h`, `90s`.
fn seconds_in_units(seconds: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds != 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// An instant in RFC 3339, to the second unless it has a fraction.
pub fn instant(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else {
        return String::new();
    };
    match chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32) {
        Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => format!("{}s", t.seconds),
    }
}

/// `[start, end)` as `START → END`.
pub fn interval(i: Option<&crate::proto::v1::TimeInterval>) -> String {
    match i {
        Some(i) => format!(
            "{} → {}",
            instant(i.start_time.as_ref()),
            instant(i.end_time.as_ref())
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_people_write_them() {
        use crate::proto::v1 as pb;
        let rolling = |seconds| pb::Window {
            window: Some(pb::window::Window::Rolling(pb::RollingWindow {
                duration: Some(prost_types::Duration { seconds, nanos: 0 }),
            })),
        };
        assert_eq!(window(Some(&rolling(2_592_000))), "rolling 30d");
        assert_eq!(window(Some(&rolling(21_600))), "rolling 6h");
        assert_eq!(window(Some(&rolling(90))), "rolling 90s");
        let calendar = pb::Window {
            window: Some(pb::window::Window::Calendar(pb::CalendarWindow {
                period: pb::CalendarPeriod::Month as i32,
                time_zone: String::new(),
            })),
        };
        assert_eq!(window(Some(&calendar)), "calendar month (UTC)");
        assert_eq!(window(None), "");
    }
    use crate::proto::v1::Money;

    fn m(amount_minor: i64, currency_code: &str) -> Money {
        Money {
            amount_minor,
            currency_code: currency_code.into(),
        }
    }

    #[test]
    fn money_is_shown_in_the_currencys_major_unit() {
        assert_eq!(money(&m(10_000, "EUR")), "100.00 EUR");
        assert_eq!(money(&m(5, "EUR")), "0.05 EUR");
        assert_eq!(money(&m(1234, "JPY")), "1234 JPY");
        assert_eq!(money(&m(1_001, "KWD")), "1.001 KWD");
        assert_eq!(money(&m(0, "USD")), "0.00 USD");
    }

    #[test]
    fn decimals_drop_binary_noise_and_trailing_zeros() {
        assert_eq!(decimal(0.9), "0.9");
        assert_eq!(decimal(0.9989999999999999), "0.999");
        assert_eq!(decimal(100.0), "100");
        assert_eq!(decimal(-0.0000001), "0");
        assert_eq!(decimal(-12.5), "-12.5");
    }
}
