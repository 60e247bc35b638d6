//! Exact numbers for verdicts. Targets, thresholds, tier bounds and percents
//! arrive as doubles but mean decimals: 0.9999 means 9999/10000, which no
//! double holds. Each is read back as the decimal of its shortest round-trip
//! representation, and every verdict is decided on rationals built from it
//! and from integer counts and microseconds.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{ToPrimitive, Zero};

/// Microseconds in a second: lengths are counted in microseconds.
pub const MICROS_PER_SECOND: i64 = 1_000_000;

/// The decimal `x` stands for: the shortest representation that reads back
/// as `x` (what `format!("{x}")` prints, never in exponent form), as an
/// exact fraction. `None` for NaN and infinities.
pub fn decimal(x: f64) -> Option<BigRational> {
    if !x.is_finite() {
        return None;
    }
    let text = format!("{x}");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let numer: BigInt = format!("{whole}{fraction}").parse().ok()?;
    let denom = BigInt::from(10).pow(u32::try_from(fraction.len()).ok()?);
    let value = BigRational::new(numer, denom);
    Some(if negative { -value } else { value })
}

/// `numer / denom` for integers.
pub fn ratio(numer: impl Into<BigInt>, denom: impl Into<BigInt>) -> BigRational {
    BigRational::new(numer.into(), denom.into())
}

/// A length in microseconds, as exact seconds.
pub fn seconds(micros: i64) -> BigRational {
    ratio(micros, MICROS_PER_SECOND)
}

/// The double nearest to `x`, for the wire (correctly rounded by
/// num-rational).
pub fn to_f64(x: &BigRational) -> f64 {
    if x.is_zero() {
        return 0.0;
    }
    x.to_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_from_the_shortest_representation() {
        assert_eq!(decimal(0.9999), Some(ratio(9999, 10_000)));
        assert_eq!(decimal(0.999), Some(ratio(999, 1000)));
        assert_eq!(decimal(1.0), Some(ratio(1, 1)));
        assert_eq!(decimal(12.5), Some(ratio(25, 2)));
        assert_eq!(decimal(-0.25), Some(ratio(-1, 4)));
        assert_eq!(decimal(1e-7), Some(ratio(1, 10_000_000)));
        assert_eq!(decimal(f64::NAN), None);
        assert_eq!(decimal(f64::INFINITY), None);
    }

    #[test]
    fn the_double_of_an_exact_value_is_the_nearest_one() {
        // 2591740.8 / 2592000 = 0.9999 exactly; dividing the doubles gives
        // 0.9998999999999999 instead.
        let exact = ratio(25_917_408, 25_920_000);
        assert_eq!(to_f64(&exact), 0.9999);
        assert_eq!(to_f64(&ratio(0, 5)), 0.0);
    }
}
