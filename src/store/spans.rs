//! A span per database round trip, for traces: each statement a call's
//! transaction sends, its `BEGIN` (with the wait for a pooled connection)
//! and its `COMMIT`, as a child of the call's server span
//! (`crate::server_span`), named as the OpenTelemetry database conventions
//! ask (`{operation} {table}`). The text of a statement is its SQL with
//! placeholders: values are bound apart and never reach a span.
//!
//! Statements outside calls (the sweeper, retention, the period closer)
//! make no span: they would each start a trace of their own. When no layer
//! wants these spans, a statement pays for one look at the callsite.

use tracing::Span;
use tracing::field::Empty;

/// The target of the statement spans, which filters name.
pub const TARGET: &str = "accord::db";

/// The longest statement text a span carries, in bytes; longer ones (a
/// batch of measurements written in one statement) are cut.
const MAX_TEXT: usize = 2048;

/// The span of one round trip on `system` (`postgresql`, `sqlite`) running
/// `sql`, or a disabled one outside a call or when no one wants it.
pub(crate) fn statement(system: &'static str, sql: &str) -> Span {
    let call = Span::current();
    if call.is_none() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: &call,
        "db",
        otel.name = Empty,
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = Empty,
        db.query.text = Empty,
    );
    if !span.is_disabled() {
        let (operation, table) = summary(sql);
        match table {
            Some(table) => span.record("otel.name", format!("{operation} {table}")),
            None => span.record("otel.name", operation),
        };
        span.record("db.operation.name", operation);
        span.record("db.query.text", cut(sql.trim(), MAX_TEXT));
    }
    span
}

/// A statement's operation (its first keyword) and the first table it
/// names after `FROM`, `INTO` or `UPDATE`, if any: what its span is called.
/// Good enough for a name: a `WITH` statement is named by its first table,
/// whatever the query that follows does with it, and a function called
/// where a table could be (`FROM unnest(...)`) is no table.
fn summary(sql: &str) -> (&str, Option<&str>) {
    let separator = |c: char| c.is_whitespace() || "(),;".contains(c);
    let mut rest = sql;
    // Each word, and whether a parenthesis follows it at once (a call).
    let mut words = std::iter::from_fn(move || {
        let tail = &rest[rest.find(|c: char| !separator(c))?..];
        let (word, after) = tail.split_at(tail.find(separator).unwrap_or(tail.len()));
        rest = after;
        Some((word, after.starts_with('(')))
    });
    let Some((operation, _)) = words.next() else {
        return ("statement", None);
    };
    let mut previous = operation;
    for (word, called) in words {
        let after_keyword = ["FROM", "INTO", "UPDATE"]
            .iter()
            .any(|k| previous.eq_ignore_ascii_case(k));
        let is_name = word.starts_with(|c: char| c.is_ascii_lowercase())
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if after_keyword && is_name && !called {
            return (operation, Some(word));
        }
        previous = word;
    }
    (operation, None)
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_named_by_its_operation_and_first_table() {
        assert_eq!(
            summary("SELECT body FROM agreements WHERE tenant = $1"),
            ("SELECT", Some("agreements"))
        );
        assert_eq!(
            summary("INSERT INTO services (tenant, id) VALUES ($1, $2)"),
            ("INSERT", Some("services"))
        );
        assert_eq!(
            summary("UPDATE request_ids SET response = $3"),
            ("UPDATE", Some("request_ids"))
        );
        assert_eq!(
            summary("\n  DELETE FROM services WHERE tenant = $1"),
            ("DELETE", Some("services"))
        );
        assert_eq!(
            summary("WITH s AS (SELECT * FROM measurement_samples WHERE x) SELECT 1"),
            ("WITH", Some("measurement_samples"))
        );
        assert_eq!(
            summary("SELECT x FROM (SELECT y FROM rollups) AS z"),
            ("SELECT", Some("rollups"))
        );
        assert_eq!(
            summary("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"),
            ("SELECT", None)
        );
        assert_eq!(
            summary("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"),
            ("SELECT", None)
        );
        assert_eq!(summary("COMMIT"), ("COMMIT", None));
        assert_eq!(summary(""), ("statement", None));
    }

    #[test]
    fn long_statements_are_cut_on_a_character_boundary() {
        assert_eq!(cut("SELECT 1", 100), "SELECT 1");
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("aé", 2), "a");
    }
}
