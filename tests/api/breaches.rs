//! Breaches through the real server: the period closer (checking every
//! second here) evaluates calendar days in UTC that have closed, so data is
//! reported into yesterday; what it writes is read with ListBreaches,
//! GetBreach and WatchBreaches. Attainments are worked out in comments.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord::config::Config;
use accord::domain::names::Id;
use accord::proto::v1 as pb;
use accord::service::entitlements::Resolver;
use accord::store::Access;
use pb::watch_breaches_response::Event;
use prost_types::Timestamp;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

/// How long the closer may take to write what a test waits for: a check a
/// second, so a few seconds at most; generous for a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(20);

fn fast_closer(c: &mut Config) {
    c.breach_check_interval = Duration::from_secs(1);
}

/// RFC 3339, as filters take instants.
fn rfc3339(t: &Timestamp) -> String {
    instant(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An SLA on `payments` (and `services`, when given) whose availability
/// (`http_success`, RATIO) is judged per calendar day in UTC against
/// `target`.
async fn daily_sla(w: &World, target: f64, services: &[&str]) -> pb::Agreement {
    let mut body = w.sla(vec![daily(availability(target))]);
    body.services.extend(services.iter().map(|s| s.to_string()));
    w.publish("sla", body).await
}

/// Every breach ListBreaches gives for `filter`, page after page.
async fn list(w: &World, filter: &str) -> Vec<pb::Breach> {
    let (mut all, mut page_token) = (Vec::new(), String::new());
    loop {
        let page = w
            .breaches()
            .list_breaches(pb::ListBreachesRequest {
                parent: w.tenant.clone(),
                page_size: 100,
                page_token,
                filter: filter.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("list breaches `{filter}`: {e:?}"))
            .into_inner();
        all.extend(page.breaches);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

/// The breaches of `filter` once `done` holds of them.
async fn listed_once(
    w: &World,
    filter: &str,
    done: impl Fn(&[pb::Breach]) -> bool,
) -> Vec<pb::Breach> {
    let start = Instant::now();
    loop {
        let breaches = list(w, filter).await;
        if done(&breaches) {
            return breaches;
        }
        assert!(
            start.elapsed() < PROMPTLY,
            "not listed within {PROMPTLY:?}; listed: {breaches:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn watch_request(w: &World, filter: &str) -> pb::WatchBreachesRequest {
    pb::WatchBreachesRequest {
        parent: w.tenant.clone(),
        filter: filter.into(),
        heartbeat_interval: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
    }
}

/// A watch of `filter` with `key`, past its first heartbeat (from then on
/// it hears every change).
async fn watch_with(
    w: &World,
    key: &str,
    filter: &str,
) -> tonic::Streaming<pb::WatchBreachesResponse> {
    let mut stream = w
        .calling_with(key)
        .breaches()
        .watch_breaches(watch_request(w, filter))
        .await
        .expect("watch breaches")
        .into_inner();
    let first = tokio::time::timeout(PROMPTLY, stream.next())
        .await
        .expect("a first message in time")
        .expect("the stream is open")
        .expect("a heartbeat, not an error");
    assert!(
        matches!(first.event, Some(Event::Heartbeat(_))),
        "{first:?}"
    );
    stream
}

async fn watch(w: &World, filter: &str) -> tonic::Streaming<pb::WatchBreachesResponse> {
    watch_with(w, &w.admin_key, filter).await
}

/// The next event of a watch that is not a heartbeat.
async fn next_event(stream: &mut tonic::Streaming<pb::WatchBreachesResponse>) -> Event {
    tokio::time::timeout(PROMPTLY, async {
        loop {
            let message = stream
                .next()
                .await
                .expect("the stream is open")
                .unwrap_or_else(|e| panic!("the watch failed: {e:?}"));
            match message.event.expect("an event") {
                Event::Heartbeat(_) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event within {PROMPTLY:?}"))
}

/// Every event but heartbeats a watch sends within `span`.
async fn events_within(
    stream: &mut tonic::Streaming<pb::WatchBreachesResponse>,
    span: Duration,
) -> Vec<Event> {
    let mut events = Vec::new();
    let _ = tokio::time::timeout(span, async {
        while let Some(message) = stream.next().await {
            match message.expect("the watch runs").event.expect("an event") {
                Event::Heartbeat(_) => {}
                other => events.push(other),
            }
        }
    })
    .await;
    events
}

/// The status a watch ends with, within `PROMPTLY`.
async fn ended(stream: &mut tonic::Streaming<pb::WatchBreachesResponse>) -> tonic::Status {
    tokio::time::timeout(PROMPTLY, async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return status,
                None => panic!("the watch ended without a status"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the watch still ran after {PROMPTLY:?}"))
}

/// Waits until the closer has taken every marker of the tenant's data and
/// evaluated the closed periods it touches.
async fn all_late_data_evaluated(s: &TestServer, w: &World) {
    let store = s.store().await;
    let tenant = Id::parse("t", &w.id).unwrap();
    eventually(PROMPTLY, || {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move {
            let mut tx = store.begin(Some(&tenant), Access::Read).await.unwrap();
            let now = chrono::Utc::now();
            tx.due_markers(&tenant, now, 10).await.unwrap().is_empty()
        }
    })
    .await;
}

/// Waits until the closer has recorded an evaluation of the UTC day `days`
/// ago on `service`, service-wide.
async fn day_evaluated(s: &TestServer, w: &World, service: &str, days: i64) {
    let store = s.store().await;
    let tenant = Id::parse("t", &w.id).unwrap();
    let service = Id::parse("s", service.rsplit('/').next().unwrap()).unwrap();
    let day = instant(&days_ago(days, 0));
    eventually(PROMPTLY, || {
        let (store, tenant, service) = (store.clone(), tenant.clone(), service.clone());
        async move {
            let mut tx = store.begin(Some(&tenant), Access::Read).await.unwrap();
            let span = day..day + chrono::Duration::days(1);
            let records = tx
                .period_generations(&tenant, None, &[service], &span)
                .await
                .unwrap();
            records
                .iter()
                .any(|(key, generation)| key.period_start == day && *generation > 0)
        }
    })
    .await;
}

fn period(b: &pb::Breach) -> (i64, i64) {
    let p = b.period.as_ref().expect("a period");
    (
        p.start_time.as_ref().unwrap().seconds,
        p.end_time.as_ref().unwrap().seconds,
    )
}

// --- a breach, listed, got and streamed ------------------------------------------

async fn a_breached_closed_day_is_listed_got_and_streamed_once(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let sla = daily_sla(&w, 0.999, &[]).await;
    let mut stream = watch(&w, "").await;

    // 900 good of 1,000 yesterday: 0.9 < 0.999.
    w.report(vec![counts("m1", &w.payments, days_ago(1, 12), 900, 1000)])
        .await;
    let breaches = listed_once(&w, "", |b| !b.is_empty()).await;

    assert_eq!(breaches.len(), 1, "{breaches:#?}");
    let b = &breaches[0];
    let id = b.name.rsplit('/').next().unwrap();
    assert!(
        b.name.starts_with(&format!("{}/breaches/b-", w.tenant)) && id.len() == 26,
        "{}",
        b.name
    );
    assert_eq!(b.agreement, sla.name);
    assert_eq!(b.objective_key, "availability");
    assert_eq!(b.consumer, "");
    assert_eq!(b.service, w.payments);
    assert_eq!(period(b), (today() - DAY, today()));
    assert_eq!(b.attainment, Some(0.9));
    assert_eq!(b.target, 0.999);
    let provenance = b.target_provenance.as_ref().expect("provenance");
    assert_eq!(provenance.agreement, sla.name);
    assert_eq!(provenance.r#override, "");
    assert_eq!((b.revision, b.state()), (1, pb::BreachState::Open));
    assert_eq!(b.credit, None, "the SLA has no credit schedule");

    match next_event(&mut stream).await {
        Event::Opened(opened) => assert_eq!(&opened, b),
        other => panic!("expected the breach opened, got {other:?}"),
    }
    let got = w
        .breaches()
        .get_breach(pb::GetBreachRequest {
            name: b.name.clone(),
        })
        .await
        .expect("get the breach")
        .into_inner();
    assert_eq!(&got, b);
    // Written by the server itself, once.
    let events = w.audit_events(&b.name).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        (events[0].actor.as_str(), events[0].method.as_str()),
        ("system", "period-closer")
    );
    assert!(events[0].before.is_none() && events[0].after.is_some());
    // Later checks find nothing new to write.
    assert!(
        events_within(&mut stream, Duration::from_secs(3))
            .await
            .is_empty()
    );
    assert_eq!(list(&w, "").await, breaches);
}

async fn breaches_are_listed_newest_period_first_in_pages_and_by_filter(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let cards = w.service("cards").await;
    let sla = daily_sla(&w, 0.999, &[&cards]).await;

    // Three missed days: payments yesterday (0.9) and the day before (0.8),
    // cards the day before (0.5).
    w.report(vec![
        counts("p1", &w.payments, days_ago(1, 12), 900, 1000),
        counts("p2", &w.payments, days_ago(2, 12), 800, 1000),
        counts("c2", &cards, days_ago(2, 6), 50, 100),
    ])
    .await;
    let all = listed_once(&w, "", |b| b.len() == 3).await;

    // Newest period first, then by name.
    assert_eq!(period(&all[0]), (today() - DAY, today()));
    assert_eq!(all[0].service, w.payments);
    assert_eq!(period(&all[1]), (today() - 2 * DAY, today() - DAY));
    assert_eq!(period(&all[2]), period(&all[1]));
    assert!(all[1].name < all[2].name);
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = w
            .breaches()
            .list_breaches(pb::ListBreachesRequest {
                parent: w.tenant.clone(),
                page_size: 1,
                page_token,
                filter: String::new(),
            })
            .await
            .expect("a page")
            .into_inner();
        pages.extend(page.breaches);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, all);

    // The two breaches of the day before sort by name, a hash of the day
    // among other things: which one is the cards one depends on the date.
    let cards_at = if all[1].service == cards { 1 } else { 2 };
    assert_eq!(all[cards_at].service, cards);
    let yesterday = rfc3339(&days_ago(1, 0));
    let names =
        |found: Vec<pb::Breach>| -> Vec<String> { found.into_iter().map(|b| b.name).collect() };
    let by = |i: &[usize]| -> Vec<String> { i.iter().map(|&i| all[i].name.clone()).collect() };
    for (filter, expected) in [
        (format!("period_start >= \"{yesterday}\""), by(&[0])),
        (format!("period_start < {yesterday}"), by(&[1, 2])),
        (format!("period_end <= \"{yesterday}\""), by(&[1, 2])),
        (
            format!("period_containing = \"{}\"", rfc3339(&days_ago(2, 23))),
            by(&[1, 2]),
        ),
        (format!("service = \"{cards}\""), by(&[cards_at])),
        (
            format!(
                "service = \"{}\" AND period_start >= \"{yesterday}\"",
                w.payments
            ),
            by(&[0]),
        ),
        ("consumer = \"\"".into(), by(&[0, 1, 2])),
        (format!("consumer = \"{}\"", w.bank), vec![]),
        (format!("agreement = \"{}\"", sla.name), by(&[0, 1, 2])),
        ("state = OPEN".into(), by(&[0, 1, 2])),
        ("state = BREACH_STATE_WITHDRAWN".into(), vec![]),
        ("objective_key = availability".into(), by(&[0, 1, 2])),
        ("objective_key = latency".into(), vec![]),
    ] {
        let mut found = names(list(&w, &filter).await);
        let mut expected = expected;
        found.sort();
        expected.sort();
        assert_eq!(found, expected, "{filter}");
    }

    // A page token belongs to its filter.
    let first = w
        .breaches()
        .list_breaches(pb::ListBreachesRequest {
            parent: w.tenant.clone(),
            page_size: 1,
            page_token: String::new(),
            filter: "state = OPEN".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let other_filter = w
        .breaches()
        .list_breaches(pb::ListBreachesRequest {
            parent: w.tenant.clone(),
            page_size: 1,
            page_token: first.next_page_token,
            filter: String::new(),
        })
        .await;
    assert_invalid_field(other_filter, "page_token");
}

// --- what makes no breach -------------------------------------------------------------

async fn a_met_day_and_a_day_without_data_open_no_breach(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let cards = w.service("cards").await;
    daily_sla(&w, 0.999, &[&cards]).await;
    let mut stream = watch(&w, "").await;

    // Payments: 999 good of 1,000 yesterday, exactly the target: MET.
    // Cards: nothing reported at all: NO_DATA.
    w.report(vec![counts("m1", &w.payments, days_ago(1, 12), 999, 1000)])
        .await;
    all_late_data_evaluated(&s, &w).await;
    day_evaluated(&s, &w, &w.payments, 1).await;
    day_evaluated(&s, &w, &cards, 1).await;

    assert_eq!(list(&w, "").await, vec![]);
    assert!(
        events_within(&mut stream, Duration::from_secs(2))
            .await
            .is_empty()
    );
}

// --- late data ----------------------------------------------------------------------------

async fn late_data_that_meets_the_target_withdraws_the_breach_in_a_second_revision(s: TestServer) {
    let w = World::new(&s, "acme").await;
    daily_sla(&w, 0.999, &[]).await;
    w.report(vec![counts("m1", &w.payments, days_ago(1, 12), 900, 1000)])
        .await;
    let opened = listed_once(&w, "", |b| b.len() == 1).await.remove(0);
    let mut stream = watch(&w, "").await;

    // 99,000 more good events: 99,900 of 100,000 = 0.999, the target: met.
    w.report(vec![counts(
        "m2",
        &w.payments,
        days_ago(1, 18),
        99_000,
        99_000,
    )])
    .await;
    let withdrawn = match next_event(&mut stream).await {
        Event::Withdrawn(b) => b,
        other => panic!("expected the breach withdrawn, got {other:?}"),
    };

    assert_eq!(withdrawn.name, opened.name);
    assert_eq!(
        (withdrawn.revision, withdrawn.state()),
        (2, pb::BreachState::Withdrawn)
    );
    assert_eq!(withdrawn.attainment, Some(0.999));
    assert_eq!(withdrawn.create_time, opened.create_time);
    assert_eq!(list(&w, "").await, vec![withdrawn.clone()]);
    assert_eq!(list(&w, "state = WITHDRAWN").await, vec![withdrawn]);
}

async fn late_data_that_still_misses_the_target_revises_the_open_breach(s: TestServer) {
    let w = World::new(&s, "acme").await;
    daily_sla(&w, 0.999, &[]).await;
    w.report(vec![counts("m1", &w.payments, days_ago(1, 12), 900, 1000)])
        .await;
    let opened = listed_once(&w, "", |b| b.len() == 1).await.remove(0);
    let mut stream = watch(&w, "").await;

    // 100 more good events: 1,000 of 1,100 = 0.9090..., still under 0.999.
    w.report(vec![counts("m2", &w.payments, days_ago(1, 13), 100, 100)])
        .await;
    let revised = match next_event(&mut stream).await {
        Event::Revised(b) => b,
        other => panic!("expected the breach revised, got {other:?}"),
    };

    assert_eq!(revised.name, opened.name);
    assert_eq!(
        (revised.revision, revised.state()),
        (2, pb::BreachState::Open)
    );
    assert_eq!(revised.attainment, Some(1000.0 / 1100.0));
    assert_eq!(w.audit_events(&revised.name).await.len(), 2);
}

async fn late_data_for_a_period_closed_long_before_is_evaluated_within_seconds(s: TestServer) {
    let w = World::new(&s, "acme").await;
    daily_sla(&w, 0.999, &[]).await;
    let mut stream = watch(&w, "").await;

    // Twenty days ago: 0 of 10.
    let reported = std::time::Instant::now();
    w.report(vec![counts("old", &w.payments, days_ago(20, 3), 0, 10)])
        .await;
    let opened = match next_event(&mut stream).await {
        Event::Opened(b) => b,
        other => panic!("expected a breach opened, got {other:?}"),
    };

    assert!(reported.elapsed() < Duration::from_secs(10));
    assert_eq!(period(&opened), (today() - 20 * DAY, today() - 19 * DAY));
    assert_eq!(opened.attainment, Some(0.0));
}

// --- consumers ------------------------------------------------------------------------------

async fn consumers_with_own_terms_or_data_get_their_own_breaches_and_others_none(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let shop = w.party("shop", None).await;
    let cafe = w.party("cafe", None).await;
    let sla = w.draft("sla", w.sla(vec![daily(availability(0.9))])).await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.99))
        .await;
    w.publish_draft(&sla.name).await;

    // Yesterday: 950 of 1,000 untagged, and 100 of 200 tagged with the cafe.
    // Service-wide (every report): 1,050 / 1,200 = 0.875 < 0.9.
    // The bank (untagged and its own): 950 / 1,000 = 0.95 < its 0.99.
    // The cafe (untagged and its own): 1,050 / 1,200 = 0.875 < 0.9.
    // The shop has neither terms nor data of its own: no breach of its own.
    w.report(vec![
        counts("u", &w.payments, days_ago(1, 12), 950, 1000),
        tagged(counts("c", &w.payments, days_ago(1, 12), 100, 200), &cafe),
    ])
    .await;
    let breaches = listed_once(&w, "", |b| b.len() >= 3).await;
    all_late_data_evaluated(&s, &w).await;

    let mut by_consumer: Vec<(String, f64, Option<f64>)> = list(&w, "")
        .await
        .iter()
        .map(|b| (b.consumer.clone(), b.target, b.attainment))
        .collect();
    by_consumer.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (String::new(), 0.9, Some(1050.0 / 1200.0)),
        (w.bank.clone(), 0.99, Some(0.95)),
        (cafe.clone(), 0.9, Some(1050.0 / 1200.0)),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(by_consumer, expected, "{breaches:#?}");
    let bank = list(&w, &format!("consumer = \"{}\"", w.bank)).await;
    let provenance = bank[0].target_provenance.as_ref().unwrap();
    assert_eq!(provenance.agreement, sla.name);
    assert_eq!(provenance.r#override, gold.name);
    assert!(list(&w, &format!("consumer = \"{shop}\"")).await.is_empty());
}

// --- exactly once across replicas ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_closing_the_same_periods_write_each_breach_and_revision_once() {
    let Some(s) = TestServer::start_with(Backend::Postgres, fast_closer).await else {
        return;
    };
    let other = s.second_replica_with(fast_closer).await;
    let w = World::new(&s, "acme").await;
    daily_sla(&w, 0.999, &[]).await;
    let mut here = watch(&w, "").await;
    let mut there = other
        .clients(&w.admin_key)
        .breaches()
        .watch_breaches(watch_request(&w, ""))
        .await
        .unwrap()
        .into_inner();

    // Fifteen missed days at once, so that both replicas, checking every
    // second, are at them together; then late data for each.
    const DAYS: i64 = 15;
    let missed = (1..=DAYS)
        .map(|d| counts(&format!("m{d}"), &w.payments, days_ago(d, 12), 900, 1000))
        .collect();
    w.report(missed).await;
    listed_once(&w, "", |b| b.len() == DAYS as usize).await;
    let late = (1..=DAYS)
        .map(|d| counts(&format!("late{d}"), &w.payments, days_ago(d, 13), 100, 100))
        .collect();
    w.report(late).await;
    listed_once(&w, "", |b| b.iter().all(|b| b.revision == 2)).await;
    // Both replicas check every second: give each a few more chances.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let breaches = list(&w, "").await;
    assert_eq!(breaches.len(), DAYS as usize);
    let store = s.store().await;
    let tenant = Id::parse("t", "acme").unwrap();
    for b in &breaches {
        assert_eq!(b.revision, 2, "{b:?}");
        let id = Id::parse("b", b.name.rsplit('/').next().unwrap()).unwrap();
        let mut tx = store.begin(Some(&tenant), Access::Read).await.unwrap();
        let revisions = tx.breach_revisions(&tenant, &id).await.unwrap();
        assert_eq!(
            revisions.iter().map(|r| r.revision).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(w.audit_events(&b.name).await.len(), 2, "{}", b.name);
    }
    // Each replica's watchers heard each event once: an opening and a
    // revision per day.
    let heard_here = events_within(&mut here, Duration::from_secs(1)).await;
    let heard_there = events_within(&mut there, Duration::from_secs(1)).await;
    for heard in [heard_here, heard_there] {
        let opened = heard
            .iter()
            .filter(|e| matches!(e, Event::Opened(_)))
            .count();
        let revised = heard
            .iter()
            .filter(|e| matches!(e, Event::Revised(_)))
            .count();
        assert_eq!(
            (opened, revised),
            (DAYS as usize, DAYS as usize),
            "{heard:#?}"
        );
    }
}

/// A replica that loses the other servers' changes for a while (its LISTEN
/// connection) may have missed breaches they wrote: its watches end with
/// UNAVAILABLE once it follows again, so that clients list and watch anew;
/// and a new watch there begins only once it follows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_unavailable_when_other_servers_changes_were_lost() {
    let Some(s) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let w = World::new(&s, "acme").await;
    let mut stream = watch(&w, "").await;
    let killed = s.db.terminate_listeners().await;
    assert_eq!(killed, 1, "the server's listener");
    let status = ended(&mut stream).await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("list breaches and watch again"),
        "{status:?}"
    );
    // Following again: a new watch begins (its first heartbeat) and hears
    // breaches as before.
    let _again = watch(&w, "").await;
}

// --- at risk --------------------------------------------------------------------------------

async fn a_page_alert_starting_to_fire_on_an_open_window_is_streamed_at_risk_once(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let rolling = pb::Objective {
        key: "availability-30d".into(),
        ..availability(0.99)
    };
    let sla = w
        .publish("sla", w.sla(vec![daily(availability(0.99)), rolling]))
        .await;
    let mut stream = watch(&w, "").await;

    // A minute ago, 100 requests, none good: over 5 minutes and over an
    // hour the error ratio is 1, a burn rate of 1 / (1 - 0.99) = 100, above
    // page-fast's factor (0.02 x 24 h / 1 h = 0.48 for the day, 14.4 for 30
    // days) and page-slow's (0.05 x 24 h / 6 h = 0.2; 6).
    w.report(vec![counts("burst", &w.payments, ago(60), 0, 100)])
        .await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match next_event(&mut stream).await {
            Event::AtRisk(a) => seen.push(a),
            other => panic!("expected AT_RISK, got {other:?}"),
        }
    }

    let mut fired: Vec<(String, String)> = seen
        .iter()
        .map(|a| (a.objective_key.clone(), a.alert.clone()))
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            ("availability".into(), "page-fast".into()),
            ("availability".into(), "page-slow".into()),
            ("availability-30d".into(), "page-fast".into()),
            ("availability-30d".into(), "page-slow".into()),
        ]
    );
    for a in &seen {
        assert_eq!(
            (a.agreement.as_str(), a.consumer.as_str()),
            (sla.name.as_str(), "")
        );
        assert_eq!(a.service, w.payments);
        let five_minutes = a
            .burn_rates
            .iter()
            .find(|b| b.lookback.as_ref().unwrap().seconds == 300)
            .expect("the 5 m burn rate");
        assert!((five_minutes.rate.unwrap() - 100.0).abs() < 1e-9, "{a:?}");
    }
    // Still firing: no second event.
    w.report(vec![counts("more", &w.payments, ago(30), 0, 100)])
        .await;
    assert!(
        events_within(&mut stream, Duration::from_secs(3))
            .await
            .is_empty()
    );
    // Open windows never breach.
    assert!(list(&w, "").await.is_empty());
}

// --- watches end ----------------------------------------------------------------------------

async fn a_breach_watch_ends_when_its_key_is_revoked(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let key = w.key("reader", pb::Role::Reader).await;
    let mut stream = watch_with(&w, &key, "").await;

    w.revoke_key("reader").await;
    let status = ended(&mut stream).await;

    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
}

async fn a_breach_watch_ends_unavailable_when_the_server_shuts_down(backend: Backend) {
    let resolver: Arc<Mutex<Option<Arc<Resolver>>>> = Arc::default();
    let kept = resolver.clone();
    let Some(s) = TestServer::start_prepared(backend, fast_closer, move |app| {
        *kept.lock().unwrap() = Some(app.resolver().clone());
    })
    .await
    else {
        return;
    };
    let w = World::new(&s, "acme").await;
    let mut stream = watch(&w, "").await;

    let resolver = resolver.lock().unwrap().clone().unwrap();
    resolver.shutdown();
    let status = ended(&mut stream).await;

    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

// --- bad requests -----------------------------------------------------------------------------

async fn bad_breach_requests_are_invalid_arguments_on_their_fields(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut client = w.breaches();
    let list_with = |filter: &str, page_size: i32, page_token: &str| pb::ListBreachesRequest {
        parent: w.tenant.clone(),
        page_size,
        page_token: page_token.into(),
        filter: filter.into(),
    };
    for filter in [
        "state = CLOSED",
        "colour = red",
        "period_start >= yesterday",
        "period_containing > \"2026-04-01T00:00:00Z\"",
        "service = \"tenants/other/services/payments\"",
        "consumer = \"tenants/acme/services/payments\"",
        "state = OPEN OR state = WITHDRAWN",
        "period_start >=",
    ] {
        assert_invalid_field(
            client.list_breaches(list_with(filter, 0, "")).await,
            "filter",
        );
        let watched = client
            .watch_breaches(pb::WatchBreachesRequest {
                filter: filter.into(),
                ..watch_request(&w, "")
            })
            .await;
        assert_invalid_field(watched, "filter");
    }
    assert_invalid_field(
        client.list_breaches(list_with("", -1, "")).await,
        "page_size",
    );
    assert_invalid_field(
        client.list_breaches(list_with("", 0, "not-a-token")).await,
        "page_token",
    );
    assert_invalid_field(
        client
            .list_breaches(pb::ListBreachesRequest {
                parent: "acme".into(),
                ..Default::default()
            })
            .await,
        "parent",
    );
    assert_invalid_field(
        client
            .watch_breaches(pb::WatchBreachesRequest {
                heartbeat_interval: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
                ..watch_request(&w, "")
            })
            .await,
        "heartbeat_interval",
    );
    for name in [
        "",
        "tenants/acme/breaches",
        "tenants/acme/parties/bank",
        "tenants/acme/breaches/B-1",
    ] {
        assert_invalid_field(
            client
                .get_breach(pb::GetBreachRequest { name: name.into() })
                .await,
            "name",
        );
    }
    let missing = format!("{}/breaches/b-000000000000000000000000", w.tenant);
    let status = assert_code(
        client
            .get_breach(pb::GetBreachRequest {
                name: missing.clone(),
            })
            .await,
        Code::NotFound,
    );
    assert_not_found(&status, &missing, "an unknown breach");
    assert_code(
        client
            .get_breach(pb::GetBreachRequest {
                name: "tenants/other/breaches/b-1".into(),
            })
            .await,
        Code::PermissionDenied,
    );
}

on_both_backends!(
    configured by fast_closer:
    a_breached_closed_day_is_listed_got_and_streamed_once,
    breaches_are_listed_newest_period_first_in_pages_and_by_filter,
    a_met_day_and_a_day_without_data_open_no_breach,
    late_data_that_meets_the_target_withdraws_the_breach_in_a_second_revision,
    late_data_that_still_misses_the_target_revises_the_open_breach,
    late_data_for_a_period_closed_long_before_is_evaluated_within_seconds,
    consumers_with_own_terms_or_data_get_their_own_breaches_and_others_none,
    a_page_alert_starting_to_fire_on_an_open_window_is_streamed_at_risk_once,
    a_breach_watch_ends_when_its_key_is_revoked,
    bad_breach_requests_are_invalid_arguments_on_their_fields,
);

mod shutdown {
    use super::*;
    on_both_backends!(backend: a_breach_watch_ends_unavailable_when_the_server_shuts_down);
}
