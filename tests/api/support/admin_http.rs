//! The admin HTTP server from outside: a GET over a plain TCP connection, as
//! a Kubernetes probe or a Prometheus scrape sends it, and a strict reading
//! of the Prometheus text format.

use std::collections::BTreeMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP/1.1 answer: its status code and body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// `GET path` on 127.0.0.1:`port`; `None` when the connection is refused
/// or closed without an HTTP answer.
pub async fn http_get(port: u16, path: &str) -> Option<HttpAnswer> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut raw),
    )
    .await;
    if !matches!(read, Ok(Ok(_))) && raw.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    Some(HttpAnswer {
        status,
        body: body.to_string(),
    })
}

/// `GET /metrics` on 127.0.0.1:`port`, which must answer 200, parsed
/// strictly.
pub async fn scrape(port: u16) -> Scrape {
    let answer = http_get(port, "/metrics")
        .await
        .expect("an HTTP answer to GET /metrics");
    assert_eq!(answer.status, 200, "{answer:?}");
    parse_prometheus_text(&answer.body).unwrap_or_else(|e| panic!("{e}\n{}", answer.body))
}

/// One sample of a scrape: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// What a scrape holds: the samples by metric name, and each family's type.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: BTreeMap<String, Vec<Sample>>,
    pub types: BTreeMap<String, String>,
}

/// A scrape in the Prometheus text format (0.0.4), read strictly: every
/// line is a `# HELP`, a `# TYPE` of a known type, or a sample whose name,
/// labels and value are well formed and whose family was typed before it.
pub fn parse_prometheus_text(text: &str) -> Result<Scrape, String> {
    let Scrape {
        mut samples,
        mut types,
    } = Scrape::default();
    let valid_name = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for (n, line) in text.lines().enumerate() {
        let fail = |why: &str| Err(format!("line {}: {why}: {line:?}", n + 1));
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_name(name) {
                return fail("bad metric name in HELP");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next()) else {
                return fail("TYPE needs a name and a type");
            };
            if !valid_name(name) {
                return fail("bad metric name in TYPE");
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return fail("unknown type");
            }
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') {
            return fail("a comment that is neither HELP nor TYPE");
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(split) => split,
            None => return fail("no value"),
        };
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => return fail("bad value"),
            },
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let Some(body) = rest.strip_suffix('}') else {
                    return fail("unclosed labels");
                };
                match parse_labels(body) {
                    Ok(labels) => (name, labels),
                    Err(why) => return fail(&why),
                }
            }
        };
        if !valid_name(name) {
            return fail("bad metric name");
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| types.contains_key(*base))
            .unwrap_or(name);
        if !types.contains_key(family) {
            return fail("a sample before its TYPE");
        }
        samples
            .entry(name.to_string())
            .or_default()
            .push(Sample { labels, value });
    }
    Ok(Scrape { samples, types })
}

/// `a="x",b="y"`, with `\\`, `\"` and `\n` escapes in values.
fn parse_labels(body: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| "a label without =\"".to_string())?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("a bad escape in a label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(name.to_string(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}
