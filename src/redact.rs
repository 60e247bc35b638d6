//! Keeping configured secrets — database passwords, OTLP credentials, the
//! bootstrap key — out of everything Accord writes. Code that shows a URL
//! shows it through `redact_url`; as a last line of defence, `accord` registers
//! its secrets at start-up (`register`), and the log writer and the error it
//! exits with mask every spelling of them (`scrub`).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{PoisonError, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_decode_str};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Shorter secrets are hidden where a URL is shown but not searched for in
/// every line: masking each `pw` would ruin the logs and protect nothing.
pub const MIN_SECRET_LEN: usize = 4;

/// What WHATWG URL serialisers percent-encode in a userinfo.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'=')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'|');

/// What `application/x-www-form-urlencoded` encodes (a space becomes `+`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

// --- URLs ----------------------------------------------------------------------

/// A URL cut where its credentials are.
struct UrlParts<'a> {
    /// `scheme://`, or nothing for a URL without an authority.
    head: &'a str,
    user: Option<&'a str>,
    password: Option<&'a str>,
    /// The host (and port) after the userinfo.
    host: &'a str,
    /// Path, query and fragment.
    tail: &'a str,
}

/// Cuts `url`. The userinfo runs to the LAST `@` (a password may hold `@`);
/// `None` when that `@` lies beyond the first `/`, `?` or `#` and a `:` comes
/// before it: then either the password holds one of those unencoded or the
/// path or query holds an `@`, and which one cannot be told.
fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let no_authority = UrlParts {
        head: "",
        user: None,
        password: None,
        host: "",
        tail: url,
    };
    if url.starts_with("sqlite:") {
        return Some(no_authority);
    }
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Some(no_authority);
    };
    let (head, rest) = url.split_at(start);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = match rest.rfind('@') {
        Some(at) if at < authority_end => Some(at),
        Some(at) if rest[..at].contains(':') => return None,
        // An `@` in the path or query only: the userinfo is the authority's.
        _ => rest[..authority_end].rfind('@'),
    };
    let (userinfo, after) = match at {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo.map(|u| u.split_once(':').ok_or(u)) {
        Some(Ok((user, password))) => (Some(user), Some(password)),
        Some(Err(user)) => (Some(user), None),
        None => (None, None),
    };
    let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (host, tail) = after.split_at(host_end);
    Some(UrlParts {
        head,
        user,
        password,
        host,
        tail,
    })
}

/// A password parameter in a query: where its name and its value are.
struct QueryPassword {
    name: Range<usize>,
    value: Range<usize>,
}

/// The query's `password` parameters (any case, any name ending in
/// `password`, such as `sslpassword`). A value runs to the next `&name=`, so
/// an unencoded `&` inside a password does not end it.
fn query_passwords(tail: &str) -> Vec<QueryPassword> {
    let Some(query_start) = tail.find('?').map(|i| i + 1) else {
        return Vec::new();
    };
    let mut found: Vec<QueryPassword> = Vec::new();
    let mut open = false;
    let mut start = query_start;
    for segment in tail[query_start..].split('&') {
        let end = start + segment.len();
        let name = segment.split_once('=').map(|(name, _)| name).filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
        });
        match name {
            Some(name) => {
                open = name.to_ascii_lowercase().ends_with("password");
                if open {
                    found.push(QueryPassword {
                        name: start..start + name.len(),
                        value: start + name.len() + 1..end,
                    });
                }
            }
            None => {
                if open && let Some(last) = found.last_mut() {
                    last.value.end = end;
                }
            }
        }
        start = end + 1;
    }
    found
}

fn redact_query(tail: &str) -> String {
    let mut out = String::with_capacity(tail.len());
    let mut shown = 0;
    for QueryPassword { value, .. } in query_passwords(tail) {
        out.push_str(&tail[shown..value.start]);
        out.push_str(MASK);
        shown = value.end;
    }
    out.push_str(&tail[shown..]);
    out
}

fn redact(url: &str, hide_user: bool) -> String {
    let Some(parts) = split_url(url) else {
        // Where the password ends is unclear: show only the scheme.
        let head = url.find("://").map(|i| &url[..i + 3]).unwrap_or("");
        return format!("{head}{MASK}");
    };
    let userinfo = match (parts.user, parts.password) {
        (None, _) => String::new(),
        (Some(_), _) if hide_user => format!("{MASK}@"),
        (Some(user), Some(_)) => format!("{user}:{MASK}@"),
        (Some(user), None) => format!("{user}@"),
    };
    format!(
        "{}{userinfo}{}{}",
        parts.head,
        parts.host,
        redact_query(parts.tail)
    )
}

/// The URL with its passwords (userinfo and `?password=`) replaced by `***`,
/// for logs and errors. The user name stays: it is a database role.
pub fn redact_url(url: &str) -> String {
    redact(url, false)
}

/// The URL with its whole userinfo and any `?password=` replaced by `***`: an
/// endpoint's user may be a token.
pub fn redact_endpoint(url: &str) -> String {
    redact(url, true)
}

/// The passwords `url` carries, as written in it: its userinfo's and its
/// query's. The userinfo's user too when `with_user` and no password follows
/// it (an endpoint's token).
pub fn url_secrets(url: &str, with_user: bool) -> Vec<String> {
    let Some(parts) = split_url(url) else {
        // Everything that may be a password: from the user to the last `@`.
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        let userinfo = rest.rsplit_once('@').map(|(u, _)| u).unwrap_or(rest);
        let password = userinfo.split_once(':').map(|(_, p)| p).unwrap_or("");
        return vec![password.to_string()];
    };
    let mut secrets: Vec<String> = query_passwords(parts.tail)
        .into_iter()
        .map(|p| parts.tail[p.value].to_string())
        .collect();
    match (parts.user, parts.password) {
        (_, Some(password)) => secrets.push(password.to_string()),
        (Some(user), None) if with_user => secrets.push(user.to_string()),
        _ => {}
    }
    secrets
}

/// Refuses a URL whose passwords cannot be told apart from the rest, or that
/// holds a password parameter its client does not read (`reads_passwords_from`;
/// `None`: any), naming `setting` but showing nothing of the URL: such a
/// password would reach the client cut in pieces or as an unknown parameter,
/// and the client logs those.
pub fn check_url(
    setting: &str,
    url: &str,
    reads_passwords_from: Option<&[&str]>,
) -> anyhow::Result<()> {
    let Some(parts) = split_url(url) else {
        anyhow::bail!(
            "{setting}: where the password ends is unclear; percent-encode `/`, `?`, `#` and \
             `@` in the user and password (as %2F, %3F, %23 and %40), and any `@` after the host"
        );
    };
    for QueryPassword { name, value } in query_passwords(parts.tail) {
        anyhow::ensure!(
            !parts.tail[value].contains(['&', '#']),
            "{setting}: a password in the query holds `&` or `#`; percent-encode them (as %26 and %23)"
        );
        let name = &parts.tail[name];
        if let Some(read) = reads_passwords_from {
            anyhow::ensure!(
                read.contains(&name),
                "{setting}: `{name}=` would be ignored, and its value logged as an unknown \
                 parameter; the password parameter is spelled `{}=`",
                read.join("=` or `")
            );
        }
    }
    Ok(())
}

// --- masking -------------------------------------------------------------------

/// A set of secrets, found in any spelling: as written, percent-decoded or
/// -encoded, form-decoded or -encoded, escaped as JSON or `Debug` output, in
/// any ASCII case (for `%2f` against `%2F`).
#[derive(Default)]
pub struct Secrets {
    spellings: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl Secrets {
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut set = Self::default();
        set.extend(secrets);
        set
    }

    fn extend<S: AsRef<str>>(&mut self, secrets: impl IntoIterator<Item = S>) {
        for secret in secrets {
            for spelling in spellings(secret.as_ref()) {
                if !self.spellings.contains(&spelling) {
                    self.spellings.push(spelling);
                }
            }
        }
        if !self.spellings.is_empty() {
            self.matcher = Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&self.spellings)
                    .expect("a few short secrets fit in an automaton"),
            );
        }
    }

    /// `text` with every secret replaced by `***`; borrowed when none is in it.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(matcher) if matcher.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                matcher.replace_all_with(text, &mut out, |_, _, out| {
                    out.push_str(MASK);
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// `scrub` for bytes on their way to a writer.
    pub fn scrub_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.matcher {
            Some(matcher) if matcher.is_match(bytes) => {
                let mut out = Vec::with_capacity(bytes.len());
                matcher.replace_all_with_bytes(bytes, &mut out, |_, _, out| {
                    out.extend_from_slice(MASK.as_bytes());
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(bytes),
        }
    }
}

/// Every way `secret` may be written, long enough to search for.
fn spellings(secret: &str) -> Vec<String> {
    let decoded = percent_decode_str(secret).decode_utf8_lossy().into_owned();
    let form_decoded = percent_decode_str(&secret.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned();
    let mut all = Vec::new();
    for plain in [secret.to_string(), decoded, form_decoded] {
        let debug = unquote(&format!("{plain:?}")).to_string();
        all.extend([
            percent_encoding::utf8_percent_encode(&plain, NON_ALPHANUMERIC).to_string(),
            percent_encoding::utf8_percent_encode(&plain, USERINFO).to_string(),
            percent_encoding::utf8_percent_encode(&plain, FORM)
                .to_string()
                .replace("%20", "+"),
            json_escaped(&plain),
            // A `Debug` field in a JSON line is escaped twice.
            json_escaped(&debug),
            debug,
            plain,
        ]);
    }
    all.retain(|s| s.len() >= MIN_SECRET_LEN);
    all
}

fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    unquote(&quoted).to_string()
}

fn unquote(quoted: &str) -> &str {
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(quoted)
}

/// The secrets this process masks in what it writes.
static KNOWN: RwLock<Option<Secrets>> = RwLock::new(None);

/// Adds secrets to those masked in every log line and in the error `accord`
/// exits with. Called at start-up, before anything is logged.
pub fn register<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) {
    let mut known = KNOWN.write().unwrap_or_else(PoisonError::into_inner);
    known.get_or_insert_with(Secrets::default).extend(secrets);
}

/// `text` with every registered secret masked.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(PoisonError::into_inner);
    match known.as_ref() {
        Some(secrets) => secrets.scrub(text),
        None => Cow::Borrowed(text),
    }
}

/// `scrub` for bytes: the log writer's hot path, one uncontended read lock
/// and one scan of the line.
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let known = KNOWN.read().unwrap_or_else(PoisonError::into_inner);
    match known.as_ref() {
        Some(secrets) => secrets.scrub_bytes(bytes),
        None => Cow::Borrowed(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_the_userinfo_are_redacted() {
        for (url, shown) in [
            (
                "postgres://accord:s3cret@db:5432/accord",
                "postgres://accord:***@db:5432/accord",
            ),
            // The userinfo runs to the last `@`.
            (
                "postgres://accord:p@ss:w@rd@db/accord",
                "postgres://accord:***@db/accord",
            ),
            (
                "postgres://accord:S3cr%2Fet%3Fpw@db/accord",
                "postgres://accord:***@db/accord",
            ),
            ("postgres://accord@db/accord", "postgres://accord@db/accord"),
            (
                "postgres://a:pw@[::1]:5432/accord",
                "postgres://a:***@[::1]:5432/accord",
            ),
            ("postgres://a:@db/x", "postgres://a:***@db/x"),
            ("sqlite:accord.db", "sqlite:accord.db"),
            ("sqlite://a:b@c/accord.db", "sqlite://a:b@c/accord.db"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn an_unencoded_slash_question_mark_or_hash_hides_everything_after_the_scheme() {
        for url in [
            "postgres://accord:S3cr/et?pw@db/accord",
            "postgres://accord:S3cr#et@db/accord",
            "postgres://accord:5432/et?pw@db/accord",
            "postgres://u:p@db/accord?application_name=me@host",
            "mysql://accord:a/b@db",
        ] {
            let shown = redact_url(url);
            assert!(shown.ends_with("://***"), "{url} -> {shown}");
            assert!(check_url("database_url", url, None).is_err(), "{url}");
        }
        // No password under any reading: nothing to hide, nothing to refuse.
        let url = "postgres://db/accord?application_name=me@host";
        assert_eq!(redact_url(url), url);
        assert!(check_url("database_url", url, None).is_ok());
    }

    #[test]
    fn passwords_in_the_query_are_redacted_whatever_their_case() {
        for (url, shown) in [
            (
                "postgres://db/accord?user=a&password=s3cret&sslmode=require",
                "postgres://db/accord?user=a&password=***&sslmode=require",
            ),
            (
                "postgres://db/accord?PassWord=s3cret",
                "postgres://db/accord?PassWord=***",
            ),
            (
                "postgres://db/accord?sslpassword=a=b&sslmode=require",
                "postgres://db/accord?sslpassword=***&sslmode=require",
            ),
            // An unencoded `&` or `#` does not end the value: `et` and `x` are
            // not parameters.
            (
                "postgres://db/accord?password=s3cr&et&sslmode=require",
                "postgres://db/accord?password=***&sslmode=require",
            ),
            (
                "postgres://db/accord?password=s3cr#x",
                "postgres://db/accord?password=***",
            ),
            (
                "postgres://u:p@db/accord?password=x?y/z",
                "postgres://u:***@db/accord?password=***",
            ),
            (
                "postgres://db/accord?passwords=&password=",
                "postgres://db/accord?passwords=&password=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert!(check_url("u", "postgres://db/a?password=s3cr&et", None).is_err());
        assert!(check_url("u", "postgres://db/a?password=s3cr#et", None).is_err());
        assert!(check_url("u", "postgres://db/a?password=s3%26cr", None).is_ok());
        // A parameter the client ignores, it logs with its value.
        let read: Option<&[&str]> = Some(&["password"]);
        assert!(check_url("u", "postgres://db/a?password=pw", read).is_ok());
        for url in [
            "postgres://db/a?PASSWORD=pw",
            "postgres://db/a?sslpassword=pw",
        ] {
            let error = check_url("u", url, read).unwrap_err().to_string();
            assert!(!error.contains("pw"), "{error}");
            assert!(check_url("u", url, None).is_ok());
        }
    }

    #[test]
    fn an_endpoint_hides_its_whole_userinfo() {
        assert_eq!(
            redact_endpoint("https://token@collector:4317"),
            "https://***@collector:4317"
        );
        assert_eq!(
            redact_endpoint("https://user:pw@collector:4317/v1?password=x"),
            "https://***@collector:4317/v1?password=***"
        );
        assert_eq!(
            redact_endpoint("http://collector:4317"),
            "http://collector:4317"
        );
    }

    #[test]
    fn url_secrets_are_the_passwords_as_written() {
        assert_eq!(
            url_secrets(
                "postgres://a:p%40ss@db/x?password=q%26r&sslmode=require",
                false
            ),
            ["q%26r", "p%40ss"]
        );
        assert_eq!(url_secrets("https://t0ken@collector", true), ["t0ken"]);
        assert!(url_secrets("postgres://accord@db/x", false).is_empty());
        assert_eq!(
            url_secrets("postgres://a:S3cr/et?pw@db/x", false),
            ["S3cr/et?pw"]
        );
    }

    #[test]
    fn every_spelling_of_a_secret_is_masked() {
        let secrets = Secrets::new(["S3cr/et?pw \"q\"+x", "ab"]);
        for text in [
            "S3cr/et?pw \"q\"+x",
            "S3cr%2Fet%3Fpw%20%22q%22%2Bx",
            "s3cr%2fet%3fpw%20%22q%22%2bx",
            "S3cr%2Fet%3Fpw+%22q%22%2Bx",
            "S3cr/et?pw \\\"q\\\"+x",
        ] {
            let line = format!("before {text} after");
            assert_eq!(secrets.scrub(&line), "before *** after", "{text}");
            assert_eq!(
                &*secrets.scrub_bytes(line.as_bytes()),
                b"before *** after",
                "{text}"
            );
        }
        // Too short to search for.
        assert_eq!(secrets.scrub("about"), "about");
        assert!(matches!(secrets.scrub("nothing here"), Cow::Borrowed(_)));
        // A `+` in a query is a space once decoded.
        let secrets = Secrets::new(["a+b+c+d"]);
        assert_eq!(secrets.scrub("password is a b c d"), "password is ***");
    }
}
