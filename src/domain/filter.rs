//! The `filter` of ListAgreements (AIP-160, the subset Accord needs): a
//! conjunction of `field = value` terms over kind, state, consumer, provider,
//! service and `labels.KEY`. Names in a filter must belong to the caller's
//! tenant, so a filter cannot reach across tenants. Filters are bounded in
//! length and terms, checked before they are parsed.

use crate::domain::agreement::{AgreementKind, AgreementState};
use crate::domain::fields::too_long;
use crate::domain::names::{Collection, Id, ResourceName};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterTerm {
    Kind(AgreementKind),
    State(AgreementState),
    Consumer(Id),
    Provider(Id),
    Service(Id),
    Label(String, String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgreementFilter {
    pub terms: Vec<FilterTerm>,
}

fn invalid(description: impl Into<String>) -> Error {
    Error::invalid("filter", description)
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '=' {
            chars.next();
            tokens.push(Token::Equals);
        } else if c == '"' {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(escaped) => value.push(escaped),
                        None => return Err(invalid("unterminated string")),
                    },
                    Some(other) => value.push(other),
                    None => return Err(invalid("unterminated string")),
                }
            }
            tokens.push(Token::Quoted(value));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '=' || c == '"' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    Ok(tokens)
}

fn enum_value<T: Copy>(value: &str, prefix: &str, values: &[(&str, T)]) -> Option<T> {
    let bare = value.strip_prefix(prefix).unwrap_or(value);
    values.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
}

impl AgreementFilter {
    pub const MAX_CHARS: usize = 2048;
    /// Each term is one more condition in the query.
    pub const MAX_TERMS: usize = 20;

    pub fn parse(input: &str, tenant: &Id) -> Result<Self> {
        let chars = input.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(invalid(too_long(Self::MAX_CHARS, chars)));
        }
        let tokens = tokenize(input)?;
        let mut terms = Vec::new();
        let mut rest = tokens.as_slice();
        while !rest.is_empty() {
            let (field, value) = match rest {
                [
                    Token::Word(f),
                    Token::Equals,
                    Token::Word(v) | Token::Quoted(v),
                    tail @ ..,
                ] => {
                    rest = tail;
                    (f.as_str(), v.as_str())
                }
                _ => {
                    return Err(invalid(
                        "expected `field = value` terms joined by AND, e.g. `kind = CUSTOMER AND labels.tier = \"gold\"`",
                    ));
                }
            };
            if terms.len() == Self::MAX_TERMS {
                return Err(invalid(format!(
                    "must have at most {} terms",
                    Self::MAX_TERMS
                )));
            }
            terms.push(Self::term(field, value, tenant)?);
            match rest {
                [] => {}
                [Token::Word(and), tail @ ..] if and == "AND" && !tail.is_empty() => rest = tail,
                _ => return Err(invalid("terms must be joined by AND")),
            }
        }
        Ok(Self { terms })
    }

    fn term(field: &str, value: &str, tenant: &Id) -> Result<FilterTerm> {
        let name = |collection| {
            ResourceName::parse_in("filter", value, collection, tenant).map_err(Error::from)
        };
        Ok(match field {
            "kind" => FilterTerm::Kind(
                enum_value(value, "AGREEMENT_KIND_", AgreementKind::ALL)
                    .ok_or_else(|| invalid(format!("unknown kind `{value}`")))?,
            ),
            "state" => FilterTerm::State(
                enum_value(value, "AGREEMENT_STATE_", AgreementState::ALL)
                    .ok_or_else(|| invalid(format!("unknown state `{value}`")))?,
            ),
            "consumer" => FilterTerm::Consumer(name(Collection::Parties)?),
            "provider" => FilterTerm::Provider(name(Collection::Parties)?),
            "service" | "services" => FilterTerm::Service(name(Collection::Services)?),
            _ => match field.strip_prefix("labels.") {
                Some(key) if !key.is_empty() => FilterTerm::Label(key.into(), value.into()),
                _ => {
                    return Err(invalid(format!(
                        "unknown field `{field}`: use kind, state, consumer, provider, service or labels.KEY"
                    )));
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Id {
        Id::parse("t", "acme").unwrap()
    }

    #[test]
    fn conjunctions_parse_into_terms() {
        let f = AgreementFilter::parse(
            r#"kind = CUSTOMER AND state=AGREEMENT_STATE_ACTIVE AND consumer = "tenants/acme/parties/bank" AND labels.tier = "gold""#,
            &tenant(),
        )
        .unwrap();
        assert_eq!(
            f.terms,
            vec![
                FilterTerm::Kind(AgreementKind::Customer),
                FilterTerm::State(AgreementState::Active),
                FilterTerm::Consumer(Id::parse("x", "bank").unwrap()),
                FilterTerm::Label("tier".into(), "gold".into()),
            ]
        );
        assert!(
            AgreementFilter::parse("", &tenant())
                .unwrap()
                .terms
                .is_empty()
        );
    }

    #[test]
    fn bad_filters_are_invalid_arguments_on_the_filter_field() {
        for bad in [
            "kind = NOPE",
            "colour = red",
            "kind CUSTOMER",
            "kind = CUSTOMER OR kind = INTERNAL",
            "kind = CUSTOMER AND",
            "consumer = \"tenants/other/parties/bank\"",
            "labels.tier = \"gold",
            format!("labels.x = \"{}\"", "a".repeat(2048)).as_str(),
            vec!["kind = CUSTOMER"; 21].join(" AND ").as_str(),
        ] {
            let err = AgreementFilter::parse(bad, &tenant()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(v) if v[0].field == "filter"),
                "{bad}: {err}"
            );
        }
    }
}
