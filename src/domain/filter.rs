//! The `filter` of ListAgreements and of ListBreaches and WatchBreaches
//! (AIP-160, the subset Accord needs): a conjunction of `field OP value`
//! terms. Agreements take `=` over kind, state, consumer, provider, service
//! and `labels.KEY`; breaches take `=` over agreement, consumer, service,
//! objective_key and state, comparisons over `period_start` and
//! `period_end`, and `period_containing`. Names in a filter must belong to
//! the caller's tenant, so a filter cannot reach across tenants. Filters are
//! bounded in length and terms, checked before they are parsed.

use chrono::{DateTime, Utc};

use crate::domain::agreement::{AgreementKind, AgreementState};
use crate::domain::breach::{AtRisk, Breach, BreachState};
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

/// A comparison of a filter term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Whether `left OP right` holds.
    pub fn holds<T: Ord>(self, left: &T, right: &T) -> bool {
        match self {
            Op::Eq => left == right,
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
        }
    }

    /// The operator in SQL, which spells each alike.
    pub fn as_sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(Op),
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '=' {
            chars.next();
            tokens.push(Token::Op(Op::Eq));
        } else if c == '<' || c == '>' {
            chars.next();
            let or_equal = chars.next_if_eq(&'=').is_some();
            tokens.push(Token::Op(match (c, or_equal) {
                ('<', false) => Op::Lt,
                ('<', true) => Op::Le,
                (_, false) => Op::Gt,
                (_, true) => Op::Ge,
            }));
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
                if c.is_whitespace() || matches!(c, '=' | '"' | '<' | '>') {
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

/// The `field OP value` terms of `input`, joined by AND: at most
/// `max_terms`, the input at most `max_chars` long. `example` shows a good
/// filter in the error a malformed one gets.
fn terms(
    input: &str,
    max_chars: usize,
    max_terms: usize,
    example: &str,
) -> Result<Vec<(String, Op, String)>> {
    let chars = input.chars().count();
    if chars > max_chars {
        return Err(invalid(too_long(max_chars, chars)));
    }
    let tokens = tokenize(input)?;
    let mut terms = Vec::new();
    let mut rest = tokens.as_slice();
    while !rest.is_empty() {
        match rest {
            [
                Token::Word(f),
                Token::Op(op),
                Token::Word(v) | Token::Quoted(v),
                tail @ ..,
            ] => {
                rest = tail;
                if terms.len() == max_terms {
                    return Err(invalid(format!("must have at most {max_terms} terms")));
                }
                terms.push((f.clone(), *op, v.clone()));
            }
            _ => {
                return Err(invalid(format!(
                    "expected `field = value` terms joined by AND, e.g. `{example}`"
                )));
            }
        }
        match rest {
            [] => {}
            [Token::Word(and), tail @ ..] if and == "AND" && !tail.is_empty() => rest = tail,
            _ => return Err(invalid("terms must be joined by AND")),
        }
    }
    Ok(terms)
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
        let example = r#"kind = CUSTOMER AND labels.tier = "gold""#;
        let terms = terms(input, Self::MAX_CHARS, Self::MAX_TERMS, example)?
            .into_iter()
            .map(|(field, op, value)| match op {
                Op::Eq => Self::term(&field, &value, tenant),
                _ => Err(invalid(format!("`{field}` can only be compared with `=`"))),
            })
            .collect::<Result<_>>()?;
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

/// One condition of a breach filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreachTerm {
    Agreement(Id),
    /// `None`: the service-wide breaches (`consumer = ""`).
    Consumer(Option<Id>),
    Service(Id),
    ObjectiveKey(String),
    State(BreachState),
    PeriodStart(Op, DateTime<Utc>),
    PeriodEnd(Op, DateTime<Utc>),
    /// The period holds the instant: `period_start <= t AND t < period_end`.
    PeriodContaining(DateTime<Utc>),
}

/// What ListBreaches and WatchBreaches narrow breaches to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreachFilter {
    pub terms: Vec<BreachTerm>,
}

impl BreachFilter {
    pub const MAX_CHARS: usize = 2048;
    pub const MAX_TERMS: usize = 20;

    pub fn parse(input: &str, tenant: &Id) -> Result<Self> {
        let example = r#"service = "tenants/acme/services/payments" AND period_start >= "2026-04-01T00:00:00Z""#;
        let terms = terms(input, Self::MAX_CHARS, Self::MAX_TERMS, example)?
            .into_iter()
            .map(|(field, op, value)| Self::term(&field, op, &value, tenant))
            .collect::<Result<_>>()?;
        Ok(Self { terms })
    }

    fn term(field: &str, op: Op, value: &str, tenant: &Id) -> Result<BreachTerm> {
        let name = |collection| {
            ResourceName::parse_in("filter", value, collection, tenant).map_err(Error::from)
        };
        let instant = || instant_in(field, value);
        let equal = |term: BreachTerm| match op {
            Op::Eq => Ok(term),
            _ => Err(invalid(format!("`{field}` can only be compared with `=`"))),
        };
        match field {
            "agreement" => equal(BreachTerm::Agreement(name(Collection::Agreements)?)),
            "consumer" if value.is_empty() => equal(BreachTerm::Consumer(None)),
            "consumer" => equal(BreachTerm::Consumer(Some(name(Collection::Parties)?))),
            "service" => equal(BreachTerm::Service(name(Collection::Services)?)),
            "objective_key" => equal(BreachTerm::ObjectiveKey(value.to_string())),
            "state" => equal(BreachTerm::State(
                enum_value(value, "BREACH_STATE_", BreachState::ALL)
                    .ok_or_else(|| invalid(format!("unknown state `{value}`")))?,
            )),
            "period_start" => Ok(BreachTerm::PeriodStart(op, instant()?)),
            "period_end" => Ok(BreachTerm::PeriodEnd(op, instant()?)),
            "period_containing" => equal(BreachTerm::PeriodContaining(instant()?)),
            _ => Err(invalid(format!(
                "unknown field `{field}`: use agreement, consumer, service, objective_key, \
                 state, period_start, period_end or period_containing"
            ))),
        }
    }

    /// Whether `breach` passes every term.
    pub fn matches(&self, breach: &Breach) -> bool {
        self.terms.iter().all(|term| match term {
            BreachTerm::Agreement(a) => breach.agreement == *a,
            BreachTerm::Consumer(c) => breach.consumer == *c,
            BreachTerm::Service(s) => breach.service == *s,
            BreachTerm::ObjectiveKey(k) => breach.objective_key == *k,
            BreachTerm::State(state) => breach.state == *state,
            BreachTerm::PeriodStart(op, t) => op.holds(&breach.period_start, t),
            BreachTerm::PeriodEnd(op, t) => op.holds(&breach.period_end, t),
            BreachTerm::PeriodContaining(t) => breach.period_start <= *t && *t < breach.period_end,
        })
    }

    /// Whether an AT_RISK event passes: it names an objective and its
    /// subject, not a breach, so only the terms on those apply (agreement,
    /// consumer, service, objective_key); the others let it through.
    pub fn matches_at_risk(&self, at_risk: &AtRisk) -> bool {
        self.terms.iter().all(|term| match term {
            BreachTerm::Agreement(a) => at_risk.agreement == *a,
            BreachTerm::Consumer(c) => at_risk.consumer == *c,
            BreachTerm::Service(s) => at_risk.service == *s,
            BreachTerm::ObjectiveKey(k) => at_risk.objective_key == *k,
            BreachTerm::State(_)
            | BreachTerm::PeriodStart(..)
            | BreachTerm::PeriodEnd(..)
            | BreachTerm::PeriodContaining(_) => true,
        })
    }
}

/// An RFC 3339 instant of a filter term, to the microsecond (what the stores
/// keep).
fn instant_in(field: &str, value: &str) -> Result<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(value).map_err(|_| {
        invalid(format!(
            "`{field}` takes an RFC 3339 instant such as \"2026-04-01T00:00:00Z\", not `{value}`"
        ))
    })?;
    let micros = parsed.timestamp_micros();
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| invalid(format!("`{value}` is out of range")))
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

    #[test]
    fn breach_filters_take_names_states_and_period_comparisons() {
        let f = BreachFilter::parse(
            r#"service = "tenants/acme/services/payments" AND consumer = "" AND state = BREACH_STATE_OPEN AND period_start >= "2026-04-01T00:00:00Z" AND period_end<2026-05-01T02:00:00+02:00 AND objective_key = availability"#,
            &tenant(),
        )
        .unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            f.terms,
            vec![
                BreachTerm::Service(Id::parse("x", "payments").unwrap()),
                BreachTerm::Consumer(None),
                BreachTerm::State(BreachState::Open),
                BreachTerm::PeriodStart(Op::Ge, at("2026-04-01T00:00:00Z")),
                BreachTerm::PeriodEnd(Op::Lt, at("2026-05-01T00:00:00Z")),
                BreachTerm::ObjectiveKey("availability".into()),
            ]
        );
        let f = BreachFilter::parse(
            r#"period_containing = "2026-04-15T12:00:00.1234567Z" AND agreement = "tenants/acme/agreements/sla""#,
            &tenant(),
        )
        .unwrap();
        assert_eq!(
            f.terms[0],
            BreachTerm::PeriodContaining(at("2026-04-15T12:00:00.123456Z"))
        );
    }

    #[test]
    fn bad_breach_filters_are_invalid_arguments_on_the_filter_field() {
        for bad in [
            "state = CLOSED",
            "colour = red",
            "service > \"tenants/acme/services/payments\"",
            "period_start >= yesterday",
            "period_start >= \"2026-04-01\"",
            "period_containing < \"2026-04-01T00:00:00Z\"",
            "consumer = \"tenants/other/parties/bank\"",
            "agreement = \"tenants/acme/parties/bank\"",
            "period_start >=",
            "state = OPEN OR state = WITHDRAWN",
        ] {
            let err = BreachFilter::parse(bad, &tenant()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(v) if v[0].field == "filter"),
                "{bad}: {err}"
            );
        }
        let err = AgreementFilter::parse("kind >= CUSTOMER", &tenant()).unwrap_err();
        assert!(matches!(&err, Error::InvalidArgument(v) if v[0].field == "filter"));
    }
}
