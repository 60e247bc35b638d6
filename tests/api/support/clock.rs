//! Instants: the fixed ones agreements start at, and the clock read between
//! writes for questions about transaction time (`known_at`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// 2026-01-01T00:00:00Z
pub const JAN_2026: i64 = 1_767_225_600;
pub const DAY: i64 = 86_400;

pub fn ts(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// The UTC midnight that started today, in seconds.
pub fn today() -> i64 {
    let now = now_ts().seconds;
    now - now.rem_euclid(DAY)
}

/// `hours` into the UTC day `days` before today: yesterday is closed, so
/// the period closer evaluates what is reported there.
pub fn days_ago(days: i64, hours: i64) -> Timestamp {
    ts(today() - days * DAY + hours * 3600)
}

pub fn now_ts() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// An instant of transaction time between two writes: the clock read with a
/// gap on either side, so that no write shares it.
pub async fn mark() -> Timestamp {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = now_ts();
    tokio::time::sleep(Duration::from_millis(5)).await;
    t
}

pub fn nanos(t: &Timestamp) -> i128 {
    t.seconds as i128 * 1_000_000_000 + t.nanos as i128
}

pub fn from_nanos(n: i128) -> Timestamp {
    Timestamp {
        seconds: n.div_euclid(1_000_000_000) as i64,
        nanos: n.rem_euclid(1_000_000_000) as i32,
    }
}

/// One microsecond earlier: the precision both stores keep.
pub fn just_before(t: &Timestamp) -> Timestamp {
    from_nanos(nanos(t) - 1_000)
}

/// Two hours from now, in seconds. Validity boundaries are whole days from
/// it, so none is near a "now" a test sees, and those from it on are in the
/// future (agreements whose validity has ended cannot be published).
pub fn horizon() -> i64 {
    now_ts().seconds + 2 * 3600
}
