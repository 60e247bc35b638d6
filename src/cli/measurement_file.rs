//! The files `accord report` reads, one measurement per line, each kept
//! with the line it is written on: CSV with a header naming its columns, or
//! JSON lines in the proto3 JSON mapping of `Measurement`. Reading streams:
//! nothing holds more than one line. Service and consumer references are
//! ids in the tenant or full resource names, as `apply` takes them.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use prost_reflect::DynamicMessage;
use sha2::{Digest, Sha256};

use super::Failure;
use super::get::resource_name;
use super::reflect::descriptor;
use crate::proto::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// `.csv`, or `.jsonl` / `.ndjson`.
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// One measurement of the file and the line it starts on.
#[derive(Debug)]
pub struct Line {
    pub number: usize,
    pub measurement: pb::Measurement,
}

/// What identifies a file's content: its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub size: u64,
    pub sha256: String,
}

/// A whole file read once: how many measurements it holds and its
/// fingerprint, or every error in it.
#[derive(Debug)]
pub struct Scan {
    pub measurements: u64,
    pub fingerprint: Fingerprint,
}

/// How many errors a scan lists before it only counts them.
const ERRORS_SHOWN: usize = 20;

/// Reads all of `path`, checking every line, before anything is sent.
pub fn scan(path: &Path, format: Format, tenant: &str) -> Result<Scan, Failure> {
    let file = open(path)?;
    let mut lines = Lines::new(path, format, tenant, Hashing::new(file))?;
    let mut measurements = 0;
    let mut errors = Vec::new();
    let mut more = 0;
    for line in lines.by_ref() {
        match line {
            Ok(_) => measurements += 1,
            Err(e) if e.fatal => {
                errors.push(e.message);
                break;
            }
            Err(e) if errors.len() < ERRORS_SHOWN => errors.push(e.message),
            Err(_) => more += 1,
        }
    }
    if !errors.is_empty() {
        let mut text = format!("error: {}", errors.join("\nerror: "));
        if more > 0 {
            text.push_str(&format!("\n… and {more} more errors"));
        }
        return Err(Failure::Input(text));
    }
    let hashing = lines.into_inner();
    Ok(Scan {
        measurements,
        fingerprint: hashing.finish(),
    })
}

pub fn open(path: &Path) -> Result<File, Failure> {
    File::open(path)
        .map_err(|e| Failure::Input(format!("error: cannot read {}: {e}", path.display())))
}

/// A line that cannot be read; `fatal` when nothing after it can be either
/// (a broken header, a read error).
#[derive(Debug)]
pub struct LineError {
    pub message: String,
    pub fatal: bool,
}

/// The measurements of a file, in order.
pub struct Lines<R: Read> {
    file: PathBuf,
    tenant: String,
    text: Text<R>,
    /// The header's columns, for CSV.
    columns: Option<Columns>,
    /// After a fatal error.
    done: bool,
}

/// A file's lines that hold something, numbered.
struct Text<R: Read> {
    reader: BufReader<R>,
    number: usize,
    line: String,
}

impl<R: Read> Text<R> {
    /// The next line that is not blank, and its number.
    fn next(&mut self) -> Option<std::io::Result<usize>> {
        loop {
            self.line.clear();
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => self.number += 1,
                Err(e) => return Some(Err(e)),
            }
            if !self.line.trim().is_empty() {
                return Some(Ok(self.number));
            }
        }
    }
}

impl<R: Read> Lines<R> {
    /// Starts reading `input`, the content of `file`: a CSV file's header
    /// (its first line that is not blank) is read at once.
    pub fn new(file: &Path, format: Format, tenant: &str, input: R) -> Result<Self, Failure> {
        let mut text = Text {
            reader: BufReader::new(input),
            number: 0,
            line: String::new(),
        };
        let at = |number: usize| format!("{}:{number}", file.display());
        let columns = match format {
            Format::Jsonl => None,
            Format::Csv => match text.next() {
                None => {
                    return Err(Failure::Input(format!(
                        "error: {}: empty: the first line names the columns, such as \
                         id,service,indicator,time,good,total",
                        at(1)
                    )));
                }
                Some(Err(e)) => {
                    return Err(Failure::Input(format!(
                        "error: {}: {e}",
                        at(text.number + 1)
                    )));
                }
                Some(Ok(number)) => Some(
                    Columns::of(&csv_record(&text.line))
                        .map_err(|e| Failure::Input(format!("error: {}{e}", at(number))))?,
                ),
            },
        };
        Ok(Self {
            file: file.to_path_buf(),
            tenant: tenant.to_string(),
            text,
            columns,
            done: false,
        })
    }

    /// What was read from, once every line is.
    pub fn into_inner(self) -> R {
        self.text.reader.into_inner()
    }
}

impl<R: Read> Iterator for Lines<R> {
    type Item = Result<Line, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let number = match self.text.next()? {
            Ok(number) => number,
            Err(e) => {
                self.done = true;
                return Some(Err(LineError {
                    message: format!("{}:{}: {e}", self.file.display(), self.text.number + 1),
                    fatal: true,
                }));
            }
        };
        let parsed = match &self.columns {
            Some(columns) => columns.row(&csv_record(&self.text.line), &self.tenant),
            None => json_line(&self.text.line, &self.tenant),
        };
        Some(
            parsed
                .map(|measurement| Line {
                    number,
                    measurement,
                })
                .map_err(|e| LineError {
                    message: format!("{}:{number}{e}", self.file.display()),
                    fatal: false,
                }),
        )
    }
}

/// One line as a CSV record, fields trimmed. A row is one line: a quoted
/// field may hold commas and quotes ("a ""b"""), not line breaks.
fn csv_record(line: &str) -> csv::StringRecord {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(line.trim_end_matches(['\r', '\n']).as_bytes());
    let mut record = csv::StringRecord::new();
    // A &str is UTF-8 and a record may end anywhere: this cannot fail.
    let _ = reader.read_record(&mut record);
    record
}

/// The columns a CSV header may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    Service,
    Consumer,
    Indicator,
    Time,
    Good,
    Total,
    Value,
    StartTime,
    EndTime,
}

const COLUMNS: [(&str, Column); 10] = [
    ("id", Column::Id),
    ("service", Column::Service),
    ("consumer", Column::Consumer),
    ("indicator", Column::Indicator),
    ("time", Column::Time),
    ("good", Column::Good),
    ("total", Column::Total),
    ("value", Column::Value),
    ("start_time", Column::StartTime),
    ("end_time", Column::EndTime),
];

fn column_name(column: Column) -> &'static str {
    COLUMNS
        .iter()
        .find(|(_, c)| *c == column)
        .map(|(n, _)| *n)
        .expect("every column has a name")
}

/// Where each column is in a row.
struct Columns {
    at: [Option<usize>; COLUMNS.len()],
    width: usize,
}

impl Columns {
    /// The header's columns, each known and named once; id, service and
    /// indicator present. The error goes after `file:1`.
    fn of(header: &csv::StringRecord) -> Result<Self, String> {
        let mut at = [None; COLUMNS.len()];
        for (i, name) in header.iter().enumerate() {
            let Some(k) = COLUMNS.iter().position(|(n, _)| *n == name) else {
                let known: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    ":{name}: unknown column (the columns are {})",
                    known.join(", ")
                ));
            };
            if at[k].replace(i).is_some() {
                return Err(format!(":{name}: named twice"));
            }
        }
        for required in [Column::Id, Column::Service, Column::Indicator] {
            if at[required as usize].is_none() {
                return Err(format!(
                    ": no column {}: the header must name id, service and indicator",
                    column_name(required)
                ));
            }
        }
        Ok(Self {
            at,
            width: header.len(),
        })
    }

    fn get<'r>(&self, record: &'r csv::StringRecord, column: Column) -> &'r str {
        self.at[column as usize]
            .and_then(|i| record.get(i))
            .unwrap_or("")
    }

    /// One row as a measurement; the error goes after `file:line`.
    fn row(&self, record: &csv::StringRecord, tenant: &str) -> Result<pb::Measurement, String> {
        if record.len() != self.width {
            return Err(format!(
                ": {} fields, but the header names {} columns",
                record.len(),
                self.width
            ));
        }
        let get = |c| self.get(record, c);
        let required = |c| match get(c) {
            "" => Err(format!(":{}: missing", column_name(c))),
            v => Ok(v.to_string()),
        };
        let id = required(Column::Id)?;
        let service = resource_name(tenant, "services", &required(Column::Service)?);
        let indicator = required(Column::Indicator)?;
        let consumer = match get(Column::Consumer) {
            "" => String::new(),
            c => resource_name(tenant, "parties", c),
        };
        // Which kinds the row sets, each by the first of its columns set.
        let kinds: Vec<(&str, Column)> = [
            ("counts", [Column::Good, Column::Total]),
            ("a sample", [Column::Value, Column::Value]),
            ("downtime", [Column::StartTime, Column::EndTime]),
        ]
        .into_iter()
        .filter_map(|(kind, cols)| {
            cols.into_iter()
                .find(|c| !get(*c).is_empty())
                .map(|c| (kind, c))
        })
        .collect();
        let value = match kinds.as_slice() {
            [] => {
                return Err(": no value: a row sets good and total (counts), value (a \
                     sample), or start_time and end_time (downtime)"
                    .into());
            }
            [_, (second, column), ..] => {
                return Err(format!(
                    ":{}: a row is one kind of measurement; this one is {} and {second}",
                    column_name(*column),
                    kinds[0].0
                ));
            }
            [("counts", _)] => pb::measurement::Value::Counts(pb::Counts {
                good: count(get(Column::Good), Column::Good)?,
                total: count(get(Column::Total), Column::Total)?,
            }),
            [("a sample", _)] => {
                let text = get(Column::Value);
                let value: f64 = text
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or_else(|| format!(":value: {text:?} is not a finite number"))?;
                pb::measurement::Value::Sample(pb::Sample { value })
            }
            [_] => pb::measurement::Value::Downtime(pb::Downtime {
                start_time: Some(time(get(Column::StartTime), Column::StartTime)?),
                end_time: Some(time(get(Column::EndTime), Column::EndTime)?),
            }),
        };
        let time = match (&value, get(Column::Time)) {
            (pb::measurement::Value::Downtime(_), "") => None,
            (pb::measurement::Value::Downtime(_), _) => {
                return Err(":time: downtime takes start_time and end_time, not time".into());
            }
            (_, text) => Some(self::time(text, Column::Time)?),
        };
        Ok(pb::Measurement {
            id,
            service,
            consumer,
            indicator,
            time,
            value: Some(value),
        })
    }
}

fn count(text: &str, column: Column) -> Result<i64, String> {
    if text.is_empty() {
        return Err(format!(":{}: missing", column_name(column)));
    }
    text.parse()
        .map_err(|_| format!(":{}: {text:?} is not a whole number", column_name(column)))
}

fn time(text: &str, column: Column) -> Result<prost_types::Timestamp, String> {
    if text.is_empty() {
        return Err(format!(":{}: missing", column_name(column)));
    }
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|e| {
            format!(
                ":{}: {text:?} is not an RFC 3339 time such as 2026-03-01T12:00:00Z ({e})",
                column_name(column)
            )
        })?
        .with_timezone(&Utc);
    Ok(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

/// One JSON line as a measurement; the error goes after `file:line`.
fn json_line(text: &str, tenant: &str) -> Result<pb::Measurement, String> {
    let text = text.trim_end();
    let mut de = serde_json::Deserializer::from_str(text);
    let message = DynamicMessage::deserialize(descriptor("Measurement"), &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| {
            let text = e.to_string();
            let text = text.split(" at line ").next().unwrap_or(&text).to_string();
            format!(": {text} (column {})", e.column())
        })?;
    let mut m: pb::Measurement = message.transcode_to().map_err(|e| format!(": {e}"))?;
    for (field, value) in [
        ("id", &m.id),
        ("service", &m.service),
        ("indicator", &m.indicator),
    ] {
        if value.is_empty() {
            return Err(format!(": {field}: missing"));
        }
    }
    if m.value.is_none() {
        return Err(": no value: a measurement has counts, sample or downtime".into());
    }
    m.service = resource_name(tenant, "services", &m.service);
    if !m.consumer.is_empty() {
        m.consumer = resource_name(tenant, "parties", &m.consumer);
    }
    Ok(m)
}

/// A reader that hashes what passes through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> Fingerprint {
        Fingerprint {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(format: Format, text: &str) -> Vec<Result<Line, LineError>> {
        Lines::new(Path::new("m"), format, "tenants/t", text.as_bytes())
            .map_err(|e| e.to_string())
            .unwrap()
            .collect()
    }

    fn errors(format: Format, text: &str) -> Vec<String> {
        read(format, text)
            .into_iter()
            .filter_map(Result::err)
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn csv_rows_of_each_kind_in_any_column_order() {
        let text = "total,good,id,service,indicator,time,value,start_time,end_time,consumer\n\
                    10,9,a,pay,req,2026-03-01T00:00:00Z,,,,\n\
                    \n\
                    ,,b,tenants/t/services/pay,lat,2026-03-01T00:00:00+01:00,12.5,,,bank\n\
                    ,,c,pay,down,,,2026-03-01T00:00:00Z,2026-03-01T00:05:00Z,\n\
                    1,1,\"d,\"\"1\"\"\",pay,req,2026-03-01T00:00:00Z,,,, \r\n";
        let lines: Vec<Line> = read(Format::Csv, text)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            lines.iter().map(|l| l.number).collect::<Vec<_>>(),
            [2, 4, 5, 6]
        );
        assert_eq!(lines[3].measurement.id, "d,\"1\"");
        let a = &lines[0].measurement;
        assert_eq!(a.service, "tenants/t/services/pay");
        assert_eq!(
            a.value,
            Some(pb::measurement::Value::Counts(pb::Counts {
                good: 9,
                total: 10
            }))
        );
        let b = &lines[1].measurement;
        assert_eq!(b.consumer, "tenants/t/parties/bank");
        assert_eq!(b.time.unwrap().seconds, 1_772_319_600);
        let c = &lines[2].measurement;
        assert!(c.time.is_none());
        assert!(matches!(c.value, Some(pb::measurement::Value::Downtime(_))));
    }

    #[test]
    fn csv_errors_name_the_line_and_the_column() {
        let text = "id,service,indicator,time,good,total,value\n\
                    a,pay,req,2026-03-01T00:00:00Z,1,,\n\
                    b,pay,req,2026-03-01T00:00:00Z,x,2,\n\
                    c,pay,req,2026-03-01T00:00:00Z,1,2,3\n\
                    d,pay,req,yesterday,1,2,\n\
                    e,pay,req,2026-03-01T00:00:00Z,,,\n\
                    ,pay,req,2026-03-01T00:00:00Z,1,2,\n\
                    f,pay\n";
        let found = errors(Format::Csv, text);
        let starts: Vec<&str> = found.iter().map(|e| e.split(' ').next().unwrap()).collect();
        assert_eq!(
            starts,
            [
                "m:2:total:",
                "m:3:good:",
                "m:4:value:",
                "m:5:time:",
                "m:6:",
                "m:7:id:",
                "m:8:"
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn a_csv_header_must_name_known_columns_and_the_required_ones() {
        let bad = |header: &str| {
            Lines::new(Path::new("m"), Format::Csv, "tenants/t", header.as_bytes())
                .err()
                .unwrap()
                .to_string()
        };
        assert!(bad("id,service,colour\n").contains("m:1:colour: unknown column"));
        assert!(bad("id,service,time\n").contains("m:1: no column indicator"));
        assert!(bad("id,id,service,indicator\n").contains("m:1:id: named twice"));
    }

    #[test]
    fn json_lines_take_proto_and_camel_case_names() {
        let text = "{\"id\":\"a\",\"service\":\"pay\",\"indicator\":\"req\",\
                    \"time\":\"2026-03-01T00:00:00Z\",\"counts\":{\"good\":\"9\",\"total\":10}}\n\
                    \n\
                    {\"id\":\"b\",\"service\":\"pay\",\"indicator\":\"down\",\"downtime\":\
                    {\"startTime\":\"2026-03-01T00:00:00Z\",\"end_time\":\"2026-03-01T00:01:00Z\"}}\n\
                    {\"id\":\"c\",\"service\":\"pay\",\"indicator\":\"req\",\"colour\":1}\n\
                    {\"id\":\"d\",\"service\":\"pay\"\n";
        let lines = read(Format::Jsonl, text);
        let a = lines[0].as_ref().unwrap();
        assert_eq!(a.number, 1);
        assert_eq!(a.measurement.service, "tenants/t/services/pay");
        assert_eq!(lines[1].as_ref().unwrap().number, 3);
        let c = &lines[2].as_ref().unwrap_err().message;
        assert!(c.starts_with("m:4: ") && c.contains("colour"), "{c}");
        let d = &lines[3].as_ref().unwrap_err().message;
        assert!(d.starts_with("m:5: "), "{d}");
    }

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("a/b.CSV")), Some(Format::Csv));
        assert_eq!(Format::of(Path::new("b.ndjson")), Some(Format::Jsonl));
        assert_eq!(Format::of(Path::new("b.jsonl")), Some(Format::Jsonl));
        assert_eq!(Format::of(Path::new("b.txt")), None);
    }
}
