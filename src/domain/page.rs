//! Pagination (AIP-158): page sizes and opaque page tokens. A token carries the
//! last key returned and a digest of the list's parameters (tenant, collection,
//! filter), sealed with an HMAC under a key the store keeps, so every replica
//! accepts it and a tampered token or one reused with other parameters is
//! INVALID_ARGUMENT. A page ends at `page_size` items or at a byte budget,
//! whichever comes first.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::fields::too_long;
use crate::error::{Error, Result};

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;
/// The most a page's items may weigh on the wire, whatever `page_size` asks
/// for (the server may lower it to half its message limit): a page of large
/// agreements ends early, with a next_page_token, rather than grow to many
/// megabytes or past what the server may send.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// The server's tokens are under 200 characters; a longer one is refused
/// before it is decoded.
pub const MAX_PAGE_TOKEN_CHARS: usize = 1024;

/// What an item adds to a list response on the wire, in bytes. The domain
/// knows no wire encoding, so the API implements this for each resource it
/// lists.
pub trait PageItem {
    fn encoded_len(&self) -> usize;
}

/// The secret that seals page tokens.
#[derive(Clone)]
pub struct PageTokenKey(Vec<u8>);

impl PageTokenKey {
    pub fn new(secret: Vec<u8>) -> Self {
        Self(secret)
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(payload);
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

impl std::fmt::Debug for PageTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokenKey(<redacted>)")
    }
}

/// One page to read: at most `size` items after `after` (exclusive), and no
/// more than `max_bytes` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub size: usize,
    pub after: Option<String>,
    pub max_bytes: usize,
    scope: String,
}

#[derive(Serialize, Deserialize)]
struct TokenBody {
    /// Last key of the previous page.
    a: String,
    /// Digest of the list parameters.
    s: String,
}

fn scope_digest(scope: &str) -> String {
    hex::encode(&Sha256::digest(scope.as_bytes())[..12])
}

impl PageRequest {
    /// `scope` names everything the list depends on besides the page itself.
    pub fn parse(page_size: i32, token: &str, scope: String, key: &PageTokenKey) -> Result<Self> {
        let size = match page_size {
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative")),
            0 => DEFAULT_PAGE_SIZE,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let token_chars = token.chars().count();
        if token_chars > MAX_PAGE_TOKEN_CHARS {
            return Err(Error::invalid(
                "page_token",
                too_long(MAX_PAGE_TOKEN_CHARS, token_chars),
            ));
        }
        let after = if token.is_empty() {
            None
        } else {
            Some(Self::open(token, &scope, key)?)
        };
        Ok(Self {
            size,
            after,
            max_bytes: MAX_PAGE_BYTES,
            scope,
        })
    }

    fn open(token: &str, scope: &str, key: &PageTokenKey) -> Result<String> {
        let invalid = || Error::invalid("page_token", "is not a token this list returned");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() < 16 {
            return Err(invalid());
        }
        let (payload, tag) = raw.split_at(raw.len() - 16);
        let expected = key.mac(payload);
        // Constant-time comparison, so the tag cannot be guessed byte by byte.
        let same = expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !same {
            return Err(invalid());
        }
        let body: TokenBody = serde_json::from_slice(payload).map_err(|_| invalid())?;
        if body.s != scope_digest(scope) {
            return Err(Error::invalid(
                "page_token",
                "was issued for a list with other parameters",
            ));
        }
        Ok(body.a)
    }

    /// How many rows to read: one more than the page, to learn whether another
    /// page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size as i64 + 1
    }

    /// Trims the rows read to the page, by count and by the bytes `weigh`
    /// says each adds, and returns the token of the next page, which starts
    /// at the first row left out.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key_of: impl Fn(&T) -> String,
        weigh: impl Fn(&T) -> usize,
        key: &PageTokenKey,
    ) -> (Vec<T>, String) {
        // The first row always goes in, so every page moves the list on; the
        // field limits keep any one resource well below the budget.
        let mut bytes = 0;
        let mut fits = 0;
        for row in rows.iter().take(self.size) {
            bytes += weigh(row);
            if fits > 0 && bytes > self.max_bytes {
                break;
            }
            fits += 1;
        }
        if fits == rows.len() {
            return (rows, String::new());
        }
        rows.truncate(fits);
        let last = rows.last().map(key_of).unwrap_or_default();
        let body = TokenBody {
            a: last,
            s: scope_digest(&self.scope),
        };
        let mut raw = serde_json::to_vec(&body).expect("serializable");
        let tag = key.mac(&raw);
        raw.extend_from_slice(&tag);
        (rows, URL_SAFE_NO_PAD.encode(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PageTokenKey {
        PageTokenKey::new(b"secret".to_vec())
    }

    #[test]
    fn tokens_round_trip_within_their_scope() {
        let first = PageRequest::parse(2, "", "s".into(), &key()).unwrap();
        let (rows, token) = first.finish(vec!["a", "b", "c"], |s| s.to_string(), |_| 1, &key());
        assert_eq!(rows, ["a", "b"]);
        let next = PageRequest::parse(2, &token, "s".into(), &key()).unwrap();
        assert_eq!(next.after.as_deref(), Some("b"));
        let err = PageRequest::parse(2, &token, "other".into(), &key()).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(v) if v[0].field == "page_token"));
    }

    #[test]
    fn tampered_tokens_are_rejected() {
        let first = PageRequest::parse(1, "", "s".into(), &key()).unwrap();
        let (_, token) = first.finish(vec!["a", "b"], |s| s.to_string(), |_| 1, &key());
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        raw[3] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(raw);
        assert!(PageRequest::parse(1, &tampered, "s".into(), &key()).is_err());
        assert!(PageRequest::parse(1, "garbage!", "s".into(), &key()).is_err());
        let other_key = PageTokenKey::new(b"other".to_vec());
        assert!(PageRequest::parse(1, &token, "s".into(), &other_key).is_err());
    }

    #[test]
    fn page_sizes_default_cap_and_reject_negatives() {
        assert_eq!(
            PageRequest::parse(0, "", "s".into(), &key()).unwrap().size,
            50
        );
        assert_eq!(
            PageRequest::parse(5000, "", "s".into(), &key())
                .unwrap()
                .size,
            1000
        );
        assert!(PageRequest::parse(-1, "", "s".into(), &key()).is_err());
    }

    #[test]
    fn pages_end_at_the_byte_budget_and_go_on_from_there() {
        let mut page = PageRequest::parse(10, "", "s".into(), &key()).unwrap();
        page.max_bytes = 10;
        let weigh = |s: &&str| s.len();
        let key_of = |s: &&str| s.to_string();
        // 4 + 4 fit, a third would pass 10 bytes.
        let (rows, token) = page.finish(vec!["aaaa", "bbbb", "cccc"], key_of, weigh, &key());
        assert_eq!(rows, ["aaaa", "bbbb"]);
        let next = PageRequest::parse(10, &token, "s".into(), &key()).unwrap();
        assert_eq!(next.after.as_deref(), Some("bbbb"));
        // A row over the budget on its own still makes a page of one.
        let big = "x".repeat(20);
        let (rows, token) = page.finish(vec![big.as_str(), "y"], key_of, weigh, &key());
        assert_eq!(rows.len(), 1);
        assert!(!token.is_empty());
        // Everything fits: the last page.
        let (rows, token) = page.finish(vec!["a", "b"], key_of, weigh, &key());
        assert_eq!((rows.len(), token.as_str()), (2, ""));
    }

    #[test]
    fn overlong_tokens_are_refused_before_they_are_decoded() {
        let err = PageRequest::parse(1, &"a".repeat(3_000_000), "s".into(), &key()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(v) if v[0].field == "page_token" && v[0].description.len() < 100),
            "{err}"
        );
    }
}
