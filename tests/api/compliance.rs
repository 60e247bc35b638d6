//! GetCompliance end to end: measurements reported through the API, then
//! compliance read back for an agreement or a (consumer, service) pair. The
//! golden scenarios run on fixed 2026 calendars (see `support/compliance.rs`)
//! and work their numbers out by hand in the comments; then every refusal,
//! with its code and detail.

use accord::domain::compliance::Status;
use accord::domain::names::Id;
use accord::proto::v1 as pb;
use accord::service::compliance::Subject;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

const APRIL: &str = "2026-04-15T00:00:00Z";
const MAY_1: &str = "2026-05-01T00:00:00Z";

fn named(m: pb::Measurement, indicator: &str) -> pb::Measurement {
    pb::Measurement {
        indicator: indicator.into(),
        ..m
    }
}

/// An SLA like `w.sla`, on `service`.
fn sla_on(w: &World, service: &str, objectives: Vec<pb::Objective>) -> pb::Agreement {
    pb::Agreement {
        services: vec![service.into()],
        ..w.sla(objectives)
    }
}

// --- golden scenarios --------------------------------------------------------

async fn april_uptime_with_weekly_maintenance_is_met_as_the_reference_works_it_out(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let ledger = w.service("ledger").await;
    // UPTIME 0.999 over calendar months in UTC; maintenance every Sunday
    // 02:00-04:00 UTC on payments, none on ledger.
    let objectives = vec![over(monthly(), uptime(0.999))];
    let maintained = w
        .publish(
            "sla",
            pb::Agreement {
                exclusions: vec![maintenance(
                    "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2",
                    "2026-01-04T02:00:00Z",
                    2,
                    "",
                )],
                ..w.sla(objectives.clone())
            },
        )
        .await;
    let bare = w
        .publish("ledger-sla", sla_on(&w, &ledger, objectives))
        .await;
    let outages = |service: &str| {
        vec![
            downtime(
                &format!("{service}-1"),
                service,
                utc("2026-04-12T01:30:00Z"),
                utc("2026-04-12T03:15:00Z"),
            ),
            downtime(
                &format!("{service}-2"),
                service,
                utc("2026-04-20T10:00:00Z"),
                utc("2026-04-20T10:12:00Z"),
            ),
        ]
    };
    let mut all = outages(&w.payments);
    all.extend(outages(&ledger));
    w.report_all(all).await;

    let c = w
        .compliance_of(w.agreement_compliance(&maintained.name, MAY_1, Some(APRIL)))
        .await;

    // April: 30 days = 43,200 min. Sundays 5, 12, 19 and 26, 02:00-04:00:
    // 4 × 120 = 480 min excluded; eligible 42,720 min = 2,563,200 s.
    // Downtime 01:30-03:15 on the 12th (105 min, 75 of them in maintenance:
    // 30 count) and 10:00-10:12 on the 20th (12): 42 min = 2,520 s.
    // Attainment 42,678 / 42,720 = 0.99901685… ≥ 0.999: MET (the period is
    // closed at 2026-05-01). Budget 0.001 × 2,563,200 = 2,563.2 s, 2,520
    // spent, 43.2 left.
    let o = objective(&c, "uptime");
    assert_eq!(status_of(o), pb::ComplianceStatus::Met);
    assert!(o.closed);
    assert_eq!(
        o.period,
        Some(interval("2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"))
    );
    assert_close(o.attainment.unwrap(), 42_678.0 / 42_720.0);
    assert_close(o.good, 2_560_680.0);
    assert_close(o.total, 2_563_200.0);
    let budget = o.error_budget.as_ref().unwrap();
    assert_eq!(budget.unit, "seconds");
    assert_close(budget.total, 2_563.2);
    assert_close(budget.spent, 2_520.0);
    assert_close(budget.remaining, 43.2);
    assert_close(o.excluded_seconds, 28_800.0);
    let sundays: Vec<pb::TimeInterval> = [5, 12, 19, 26]
        .iter()
        .map(|d| {
            interval(
                &format!("2026-04-{d:02}T02:00:00Z"),
                &format!("2026-04-{d:02}T04:00:00Z"),
            )
        })
        .collect();
    assert_eq!(o.exclusions_applied, sundays);
    assert_eq!(o.service, w.payments);
    assert_eq!(o.consumer, "", "a SERVICE_LEVEL agreement is service-wide");
    assert_eq!(o.target, 0.999);
    let provenance = o.target_provenance.as_ref().unwrap();
    assert_eq!(provenance.agreement, maintained.name);
    assert_eq!(provenance.revision_id, maintained.revision_id);

    // Without the exclusion: 105 + 12 = 117 min down of 43,200:
    // 43,083 / 43,200 = 0.99729… < 0.999, and the month is over: BREACHED.
    let c = w
        .compliance_of(w.agreement_compliance(&bare.name, MAY_1, Some(APRIL)))
        .await;
    let o = objective(&c, "uptime");
    assert_eq!(status_of(o), pb::ComplianceStatus::Breached);
    assert_close(o.attainment.unwrap(), 43_083.0 / 43_200.0);
    assert_eq!(o.excluded_seconds, 0.0);
}

async fn a_rolling_ratio_counts_the_sub_minute_edges_from_raw_rows(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let pay = w.payments.clone();
    w.report_all(vec![
        counts("before", &pay, utc("2026-04-01T00:00:10Z"), 0, 100),
        counts("first", &pay, utc("2026-04-01T00:00:40Z"), 90, 100),
        counts("middle", &pay, utc("2026-04-15T12:00:00Z"), 1000, 1000),
        counts("last", &pay, utc("2026-05-01T00:00:20Z"), 10, 10),
        counts("at-as-of", &pay, utc("2026-05-01T00:00:30Z"), 0, 50),
    ])
    .await;

    let c = w
        .compliance_of(w.agreement_compliance(&sla.name, "2026-05-01T00:00:30Z", None))
        .await;

    // 30 days rolling at 00:00:30: [2026-04-01T00:00:30, 2026-05-01T00:00:30).
    // "before" (00:00:10) and "at-as-of" (00:00:30) share their minutes with
    // the window's edges but lie outside it; only raw rows can tell.
    // good 90 + 1,000 + 10 = 1,100 of 100 + 1,000 + 10 = 1,110:
    // 0.99099… < 0.999, BELOW_TARGET. Budget 0.001 × 1,110 = 1.11 events,
    // 10 spent, −8.89 left.
    let o = objective(&c, "availability");
    assert_eq!(status_of(o), pb::ComplianceStatus::BelowTarget);
    assert!(!o.closed);
    assert_eq!(
        o.period,
        Some(interval("2026-04-01T00:00:30Z", "2026-05-01T00:00:30Z"))
    );
    assert_eq!((o.good, o.total), (1100.0, 1110.0));
    assert_close(o.attainment.unwrap(), 1100.0 / 1110.0);
    let budget = o.error_budget.as_ref().unwrap();
    assert_eq!(budget.unit, "events");
    assert_close(budget.total, 1.11);
    assert_close(budget.spent, 10.0);
    assert_close(budget.remaining, -8.89);
    // The last 5 minutes hold "last" alone: 10/10, no error.
    assert_eq!(burn_rate(o, 300), Some(0.0));
    // Rolling windows earn no credit and have no schedule here.
    assert_eq!(o.credit, None);
}

async fn a_calendar_month_in_new_york_is_743_hours_across_the_dst_change(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let ny = calendar(pb::CalendarPeriod::Month, "America/New_York");
    let sla = w.publish("sla", w.sla(vec![over(ny, uptime(0.999))])).await;
    let pay = w.payments.clone();
    w.report_all(vec![
        downtime(
            "a",
            &pay,
            utc("2026-03-01T04:30:00Z"),
            utc("2026-03-01T05:30:00Z"),
        ),
        downtime(
            "b",
            &pay,
            utc("2026-04-01T03:50:00Z"),
            utc("2026-04-01T04:20:00Z"),
        ),
    ])
    .await;

    let c = w
        .compliance_of(w.agreement_compliance(
            &sla.name,
            "2026-04-02T00:00:00Z",
            Some("2026-03-15T12:00:00Z"),
        ))
        .await;

    // March 2026 in New York: from local midnight (05:00Z, EST) to local
    // midnight on April 1 (04:00Z, EDT since 8 March): 743 h = 2,674,800 s.
    // Downtime inside: 05:00-05:30Z (30 min; 04:30-05:00Z is still
    // February there) and 03:50-04:00Z (10 min; the rest is April):
    // 2,400 s. Attainment 2,672,400 / 2,674,800 = 0.99910… ≥ 0.999: MET.
    // Budget 2,674.8 s, 2,400 spent, 274.8 left.
    let o = objective(&c, "uptime");
    assert_eq!(
        o.period,
        Some(interval("2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"))
    );
    assert!(o.closed);
    assert_eq!(status_of(o), pb::ComplianceStatus::Met);
    assert_close(o.total, 2_674_800.0);
    assert_close(o.good, 2_672_400.0);
    assert_close(o.attainment.unwrap(), 2_672_400.0 / 2_674_800.0);
    let budget = o.error_budget.as_ref().unwrap();
    assert_close(budget.total, 2_674.8);
    assert_close(budget.spent, 2_400.0);
    assert_close(budget.remaining, 274.8);
}

async fn a_threshold_objective_counts_the_samples_meeting_its_bound(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let sla = w.publish("sla", w.sla(vec![latency(300.0, 0.9)])).await;
    let pay = w.payments.clone();
    let mut samples = vec![sample("old", &pay, utc("2026-03-20T00:00:00Z"), 999.0)];
    let values = [
        100.0, 250.0, 299.9, 300.0, 120.0, 180.0, 220.0, 300.0, 301.0, 450.0,
    ];
    for (i, value) in values.iter().enumerate() {
        let t = utc(&format!("2026-04-10T{i:02}:00:00Z"));
        samples.push(sample(&format!("s{i}"), &pay, t, *value));
    }
    w.report_all(samples).await;

    let c = w
        .compliance_of(w.agreement_compliance(&sla.name, MAY_1, None))
        .await;

    // Window [2026-04-01, 2026-05-01): the sample of 20 March is out. Ten
    // samples; ≤ 300 holds for eight (300 itself included), not for 301 and
    // 450: 8 / 10 = 0.8 < 0.9, BELOW_TARGET. Budget 0.1 × 10 = 1 sample, 2
    // spent, −1 left.
    let o = objective(&c, "latency");
    assert_eq!(status_of(o), pb::ComplianceStatus::BelowTarget);
    assert_eq!((o.good, o.total), (8.0, 10.0));
    assert_close(o.attainment.unwrap(), 0.8);
    let budget = o.error_budget.as_ref().unwrap();
    assert_eq!(budget.unit, "samples");
    assert_close(budget.total, 1.0);
    assert_close(budget.spent, 2.0);
    assert_close(budget.remaining, -1.0);
}

async fn a_timeslice_objective_counts_good_slices_of_summed_counts(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let hourly = pb::Objective {
        key: "slices".into(),
        display_name: "Good hours".into(),
        indicator: REQUESTS.into(),
        kind: pb::ObjectiveKind::Timeslice.into(),
        target: 0.9,
        threshold: Some(0.95),
        comparison: pb::Comparison::GreaterThanOrEqual.into(),
        window: Some(calendar(pb::CalendarPeriod::Day, "")),
        slice: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
    };
    let sla = w.publish("sla", w.sla(vec![hourly])).await;
    let pay = w.payments.clone();
    w.report_all(vec![
        counts("h3", &pay, utc("2026-04-10T03:10:00Z"), 90, 100),
        counts("h5a", &pay, utc("2026-04-10T05:10:00Z"), 1, 1),
        counts("h5b", &pay, utc("2026-04-10T05:40:00Z"), 90, 99),
        counts("h7", &pay, utc("2026-04-10T07:30:00Z"), 95, 100),
    ])
    .await;

    let c = w
        .compliance_of(w.agreement_compliance(
            &sla.name,
            "2026-04-11T00:00:00Z",
            Some("2026-04-10T12:00:00Z"),
        ))
        .await;

    // 24 one-hour slices of 10 April (UTC). 03:00: 90/100 = 0.9 < 0.95, bad.
    // 05:00: (1 + 90) / (1 + 99) = 0.91, bad (the mean of the two reports'
    // ratios, 0.9545…, would have passed). 07:00: 95/100 = 0.95, exactly at
    // the threshold, good. The 21 slices without data are good. 22 / 24 =
    // 0.91666… ≥ 0.9: MET. Budget in seconds: 0.1 × 24 × 3,600 = 8,640, two
    // bad slices spend 7,200, 1,440 left.
    let o = objective(&c, "slices");
    assert_eq!(status_of(o), pb::ComplianceStatus::Met);
    assert!(o.closed);
    assert_eq!((o.good, o.total), (22.0, 24.0));
    assert_close(o.attainment.unwrap(), 22.0 / 24.0);
    let budget = o.error_budget.as_ref().unwrap();
    assert_eq!(budget.unit, "seconds");
    assert_close(budget.total, 8_640.0);
    assert_close(budget.spent, 7_200.0);
    assert_close(budget.remaining, 1_440.0);
}

async fn one_service_wide_stream_gives_two_consumers_different_verdicts(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let shop = w.party("shop", None).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.99)])).await;
    let gold = w
        .add_override(&sla.name, "gold", target_override(&w.bank, 0.999))
        .await;
    w.report_all(vec![counts(
        "day",
        &w.payments,
        utc("2026-04-20T00:00:00Z"),
        995,
        1000,
    )])
    .await;

    let bank = w
        .compliance_of(w.pair_compliance(&w.bank, &w.payments, MAY_1, None))
        .await;
    let other = w
        .compliance_of(w.pair_compliance(&shop, &w.payments, MAY_1, None))
        .await;

    // The same 995 / 1,000 = 0.995 for both. The bank's override asks 0.999:
    // BELOW_TARGET; the shop has the SLA's 0.99: MET.
    let (b, o) = (
        objective(&bank, "availability"),
        objective(&other, "availability"),
    );
    assert_eq!((b.good, b.total), (o.good, o.total));
    assert_eq!((b.good, b.total), (995.0, 1000.0));
    assert_eq!(status_of(b), pb::ComplianceStatus::BelowTarget);
    assert_eq!(status_of(o), pb::ComplianceStatus::Met);
    assert_eq!((b.target, o.target), (0.999, 0.99));
    assert_eq!(
        (b.consumer.as_str(), o.consumer.as_str()),
        (w.bank.as_str(), shop.as_str())
    );
    // Where each target came from: the override, and the SLA itself.
    let bank_source = b.target_provenance.as_ref().unwrap();
    assert_eq!(bank_source.r#override, gold.name);
    assert_eq!(bank_source.agreement, sla.name);
    let shop_source = o.target_provenance.as_ref().unwrap();
    assert_eq!(shop_source.r#override, "");
    assert_eq!(shop_source.agreement, sla.name);
    // The objective itself is the SLA's for both.
    assert_eq!(b.objective_provenance.as_ref().unwrap().r#override, "");
}

async fn tagged_data_counts_for_its_consumer_and_the_service_wide_view_only(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let shop = w.party("shop", None).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.99)])).await;
    let pay = w.payments.clone();
    let t = utc("2026-04-20T00:00:00Z");
    w.report_all(vec![
        counts("untagged", &pay, t, 100, 100),
        tagged(counts("bank", &pay, t, 50, 100), &w.bank),
        tagged(counts("shop", &pay, t, 0, 10), &shop),
    ])
    .await;

    let totals = |c: &pb::Compliance| {
        let o = objective(c, "availability");
        (o.good, o.total)
    };
    // The bank: untagged and its own, 150 / 200. The shop: untagged and its
    // own, 100 / 110. The SLA, service-wide: everything, 150 / 210.
    let bank = w
        .compliance_of(w.pair_compliance(&w.bank, &pay, MAY_1, None))
        .await;
    assert_eq!(totals(&bank), (150.0, 200.0));
    let other = w
        .compliance_of(w.pair_compliance(&shop, &pay, MAY_1, None))
        .await;
    assert_eq!(totals(&other), (100.0, 110.0));
    let all = w
        .compliance_of(w.agreement_compliance(&sla.name, MAY_1, None))
        .await;
    assert_eq!(totals(&all), (150.0, 210.0));
}

async fn attainment_exactly_at_target_is_met(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let sla = w.publish("sla", w.sla(vec![uptime(0.9999)])).await;
    w.report_all(vec![downtime(
        "blip",
        &w.payments,
        utc("2026-04-10T00:00:00Z"),
        utc("2026-04-10T00:04:19.2Z"),
    )])
    .await;

    let c = w
        .compliance_of(w.agreement_compliance(&sla.name, MAY_1, None))
        .await;

    // 30 days = 2,592,000 s, 259.2 s down: (2,592,000 − 259.2) / 2,592,000
    // = 0.9999 exactly (as doubles it would be 0.9998999999999999): MET,
    // with the whole budget of 259.2 s spent and 0 left.
    let o = objective(&c, "uptime");
    assert_eq!(status_of(o), pb::ComplianceStatus::Met);
    assert_eq!(o.attainment, Some(0.9999));
    assert_close(o.good, 2_591_740.8);
    let budget = o.error_budget.as_ref().unwrap();
    assert_close(budget.total, 259.2);
    assert_close(budget.spent, 259.2);
    assert_eq!(budget.remaining, 0.0);
}

async fn a_credit_tier_applies_strictly_below_its_bound(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let objectives = vec![
        over(monthly(), ratio("checkout", 0.999)),
        over(monthly(), ratio("search", 0.999)),
    ];
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                credits: Some(fee_credits(100_000, &[(0.999, 10.0), (0.99, 25.0)])),
                ..w.sla(objectives)
            },
        )
        .await;
    let pay = w.payments.clone();
    let t = utc("2026-04-10T00:00:00Z");
    w.report_all(vec![
        named(counts("c", &pay, t, 990, 1000), "checkout_events"),
        named(counts("s", &pay, t, 989, 1000), "search_events"),
    ])
    .await;

    let c = w
        .compliance_of(w.agreement_compliance(&sla.name, MAY_1, Some(APRIL)))
        .await;

    // April is over; both objectives are under 0.999: BREACHED. checkout
    // 990 / 1,000 = 0.99 is not below the 0.99 bound, so the lowest bound
    // above it is 0.999: 10 % of 1,000.00 EUR = 100.00. search 0.989 < 0.99:
    // 25 % = 250.00.
    let checkout = objective(&c, "checkout");
    assert_eq!(status_of(checkout), pb::ComplianceStatus::Breached);
    assert_eq!(
        checkout.credit,
        Some(pb::Credit {
            percent: 10.0,
            amount: Some(eur(10_000)),
        })
    );
    let search = objective(&c, "search");
    assert_eq!(status_of(search), pb::ComplianceStatus::Breached);
    assert_eq!(
        search.credit,
        Some(pb::Credit {
            percent: 25.0,
            amount: Some(eur(25_000)),
        })
    );

    // The same April asked as an explicit interval: the verdicts stand but
    // explicit intervals never breach and earn nothing.
    let explicit = pb::GetComplianceRequest {
        interval: Some(interval("2026-04-01T00:00:00Z", MAY_1)),
        ..w.agreement_compliance(&sla.name, MAY_1, None)
    };
    let c = w.compliance_of(explicit).await;
    let search = objective(&c, "search");
    assert_eq!(status_of(search), pb::ComplianceStatus::BelowTarget);
    assert!(search.closed);
    assert_eq!(search.credit.as_ref().unwrap().amount, Some(eur(0)));
}

async fn no_data_has_no_attainment_budget_rate_or_credit(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                credits: Some(fee_credits(100_000, &[(0.999, 10.0)])),
                ..w.sla(vec![over(monthly(), availability(0.999))])
            },
        )
        .await;

    let c = w
        .compliance_of(w.agreement_compliance(&sla.name, MAY_1, Some(APRIL)))
        .await;

    // Nothing reported in April: NO_DATA, never a breach, nothing earned.
    let o = objective(&c, "availability");
    assert_eq!(status_of(o), pb::ComplianceStatus::NoData);
    assert_eq!(o.attainment, None);
    assert_eq!(o.error_budget, None);
    assert_eq!((o.good, o.total), (0.0, 0.0));
    assert_eq!(o.burn_rates.len(), 7);
    assert!(o.burn_rates.iter().all(|r| r.rate.is_none()));
    assert_eq!(o.alerts.len(), 4);
    assert!(o.alerts.iter().all(|a| !a.firing));
    assert_eq!(o.credit.as_ref().unwrap().amount, Some(eur(0)));
}

async fn a_page_alert_fires_when_both_its_lookbacks_burn_fast(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let pay = w.payments.clone();
    w.report_all(vec![
        counts("40m-ago", &pay, utc("2026-04-30T23:20:00Z"), 900, 1000),
        counts("2m-ago", &pay, utc("2026-04-30T23:58:00Z"), 80, 100),
    ])
    .await;

    let c = w
        .compliance_of(w.agreement_compliance(&sla.name, MAY_1, None))
        .await;

    // At 2026-05-01T00:00Z, target 0.999 (budget ratio 0.001), W = 30 days.
    // 5 m: 20 bad of 100 = 0.2, rate 200. 1 h: 120 bad of 1,100 = 0.10909…,
    // rate 109.09…. page-fast (1 h and 5 m) needs both above 2 % × 720 h / 1 h
    // = 14.4: it fires.
    let o = objective(&c, "availability");
    assert_close(burn_rate(o, 300).unwrap(), 200.0);
    assert_close(burn_rate(o, 3600).unwrap(), 120.0 / 1100.0 / 0.001);
    assert!(firing(o, "page-fast"));
    let page = o.alerts.iter().find(|a| a.name == "page-fast").unwrap();
    assert_close(page.factor, 14.4);
    // The window: 980 / 1,100, under target.
    assert_eq!(status_of(o), pb::ComplianceStatus::BelowTarget);
}

async fn the_revision_in_force_at_as_of_gives_the_agreements_terms(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let sla = w.publish("sla", w.standard_sla()).await;
    let before = mark().await;
    w.set_availability(&sla.name, 0.95).await;
    let after = mark().await;

    let target_at = |t: prost_types::Timestamp| {
        let w = w.clone();
        let name = sla.name.clone();
        async move {
            let request = pb::GetComplianceRequest {
                as_of: Some(t),
                ..w.agreement_compliance(&name, MAY_1, None)
            };
            objective(&w.compliance_of(request).await, "availability").target
        }
    };
    // Published with 0.999, edited to 0.95; before the first publication the
    // first revision's terms stand.
    assert_eq!(target_at(before).await, 0.999);
    assert_eq!(target_at(after).await, 0.95);
    assert_eq!(target_at(utc("2026-02-01T00:00:00Z")).await, 0.999);
}

// --- the breach closer's entry point --------------------------------------------

async fn evaluate_period_gives_the_calendar_objectives_of_a_closed_period(backend: Backend) {
    let mut compliance = None;
    let Some(s) = TestServer::start_prepared(backend, remembers_2026, |app| {
        compliance = Some(app.compliance().clone());
    })
    .await
    else {
        return;
    };
    let compliance = compliance.expect("the application's compliance");
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    // A monthly UPTIME objective and a rolling RATIO one.
    let sla = w
        .publish(
            "sla",
            w.sla(vec![over(monthly(), uptime(0.999)), availability(0.999)]),
        )
        .await;
    w.report_all(vec![downtime(
        "outage",
        &w.payments,
        utc("2026-04-12T00:00:00Z"),
        utc("2026-04-12T01:00:00Z"),
    )])
    .await;
    let id = |s: &str| Id::parse("id", s).unwrap();

    let evaluated = compliance
        .evaluate_period(
            &id("acme"),
            &Subject::Agreement(id("sla")),
            "2026-04-15T00:00:00Z".parse().unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();

    // Only the calendar objective: April, over, 60 min down of 43,200:
    // 43,140 / 43,200 = 0.998611… < 0.999, BREACHED; its target from the
    // SLA's first revision, on the service-wide view.
    assert_eq!(evaluated.objectives.len(), 1, "{evaluated:#?}");
    let o = &evaluated.objectives[0];
    assert_eq!(o.objective.key, "uptime");
    assert_eq!(o.consumer, None);
    assert_eq!(o.evaluation.status, Status::Breached);
    assert_close(
        o.evaluation.attainment.as_ref().unwrap().value,
        43_140.0 / 43_200.0,
    );
    assert_eq!(
        o.evaluation.window.period.start,
        "2026-04-01T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(o.target_provenance.agreement.as_str(), "sla");
    assert_eq!(o.target_provenance.revision.as_str(), sla.revision_id);
    assert_eq!(o.source, o.target_provenance);
}

// --- refusals ----------------------------------------------------------------

async fn bad_requests_name_their_field(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let sla = w.publish("sla", w.standard_sla()).await;
    let good = w.agreement_compliance(&sla.name, MAY_1, None);
    let in_an_hour = prost_types::Timestamp {
        seconds: now_ts().seconds + 3600,
        nanos: 0,
    };
    use pb::get_compliance_request::Subject;
    let pair = |consumer: &str, service: &str| {
        Some(Subject::Pair(pb::ConsumerService {
            consumer: consumer.into(),
            service: service.into(),
        }))
    };
    let cases: Vec<(&str, pb::GetComplianceRequest)> = vec![
        (
            "parent",
            pb::GetComplianceRequest {
                parent: "acme".into(),
                ..good.clone()
            },
        ),
        (
            "subject",
            pb::GetComplianceRequest {
                subject: None,
                ..good.clone()
            },
        ),
        (
            "agreement",
            pb::GetComplianceRequest {
                subject: Some(Subject::Agreement("tenants/other/agreements/sla".into())),
                ..good.clone()
            },
        ),
        (
            "agreement",
            pb::GetComplianceRequest {
                subject: Some(Subject::Agreement("sla".into())),
                ..good.clone()
            },
        ),
        (
            "pair.consumer",
            pb::GetComplianceRequest {
                subject: pair("tenants/other/parties/bank", &w.payments),
                ..good.clone()
            },
        ),
        (
            "pair.service",
            pb::GetComplianceRequest {
                subject: pair(&w.bank, "payments"),
                ..good.clone()
            },
        ),
        (
            "as_of",
            pb::GetComplianceRequest {
                as_of: Some(in_an_hour),
                ..good.clone()
            },
        ),
        (
            "as_of",
            pb::GetComplianceRequest {
                as_of: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..good.clone()
            },
        ),
        (
            "period_containing",
            pb::GetComplianceRequest {
                period_containing: Some(utc("2026-05-02T00:00:00Z")),
                ..good.clone()
            },
        ),
        (
            "interval.end_time",
            pb::GetComplianceRequest {
                interval: Some(interval(APRIL, APRIL)),
                ..good.clone()
            },
        ),
        (
            "interval.start_time",
            pb::GetComplianceRequest {
                interval: Some(pb::TimeInterval {
                    start_time: None,
                    end_time: Some(utc(APRIL)),
                }),
                ..good.clone()
            },
        ),
        (
            "interval",
            pb::GetComplianceRequest {
                interval: Some(interval("2025-03-01T00:00:00Z", "2026-04-06T00:00:00Z")),
                ..good.clone()
            },
        ),
        (
            "interval.start_time",
            pb::GetComplianceRequest {
                interval: Some(interval("2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z")),
                ..good.clone()
            },
        ),
        (
            "period_containing",
            pb::GetComplianceRequest {
                period_containing: Some(utc(APRIL)),
                interval: Some(interval("2026-04-01T00:00:00Z", MAY_1)),
                ..good.clone()
            },
        ),
    ];
    for (field, request) in cases {
        assert_invalid_field(w.try_compliance(request).await, field);
    }
    // The well-formed request is answered.
    w.compliance_of(good).await;
}

async fn unknown_subjects_are_not_found(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    w.publish("sla", w.standard_sla()).await;
    let ledger = w.service("ledger").await;
    let nope = w.name("agreements", "nope");
    let status = assert_code(
        w.try_compliance(w.agreement_compliance(&nope, MAY_1, None))
            .await,
        Code::NotFound,
    );
    assert_not_found(&status, &nope, "unknown agreement");
    let ghost = w.name("parties", "ghost");
    let status = assert_code(
        w.try_compliance(w.pair_compliance(&ghost, &w.payments, MAY_1, None))
            .await,
        Code::NotFound,
    );
    assert_not_found(&status, &ghost, "unknown consumer");
    let gone = w.name("services", "gone");
    let status = assert_code(
        w.try_compliance(w.pair_compliance(&w.bank, &gone, MAY_1, None))
            .await,
        Code::NotFound,
    );
    assert_not_found(&status, &gone, "unknown service");
    // No agreement covers the ledger: the bank has no entitlement there.
    let status = assert_code(
        w.try_compliance(w.pair_compliance(&w.bank, &ledger, MAY_1, None))
            .await,
        Code::NotFound,
    );
    assert_not_found(
        &status,
        &w.no_entitlement(&w.bank, &ledger),
        "no entitlement",
    );
}

async fn a_draft_agreement_has_no_terms_in_force(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let draft = w.draft("sla", w.standard_sla()).await;
    let status = assert_code(
        w.try_compliance(w.agreement_compliance(&draft.name, MAY_1, None))
            .await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "AGREEMENT_STATE");
    assert!(
        status.message().contains("never been published"),
        "{status:?}"
    );
}

async fn a_window_of_too_many_slices_is_a_failed_precondition(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    // One-second slices over a calendar year: 31,536,000 slices, more than
    // the 1,000,000 one evaluation holds.
    let seconds = pb::Objective {
        key: "seconds".into(),
        display_name: "Good seconds".into(),
        indicator: REQUESTS.into(),
        kind: pb::ObjectiveKind::Timeslice.into(),
        target: 0.9,
        threshold: Some(0.95),
        comparison: pb::Comparison::GreaterThanOrEqual.into(),
        window: Some(calendar(pb::CalendarPeriod::Year, "")),
        slice: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
    };
    let sla = w.publish("sla", w.sla(vec![seconds])).await;
    let status = assert_code(
        w.try_compliance(w.agreement_compliance(&sla.name, MAY_1, Some(APRIL)))
            .await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "TOO_MANY_SLICES");
    assert!(status.message().contains("`seconds`"), "{status:?}");
    // A day of them is answered: 86,400 slices, one holding 1/1, the others
    // empty and so good.
    w.report_all(vec![counts(
        "noon",
        &w.payments,
        utc("2026-04-10T12:00:00Z"),
        1,
        1,
    )])
    .await;
    let day = pb::GetComplianceRequest {
        interval: Some(interval("2026-04-10T00:00:00Z", "2026-04-11T00:00:00Z")),
        ..w.agreement_compliance(&sla.name, MAY_1, None)
    };
    let c = w.compliance_of(day).await;
    let o = objective(&c, "seconds");
    assert_eq!(status_of(o), pb::ComplianceStatus::Met);
    assert_eq!((o.good, o.total), (86_400.0, 86_400.0));
}

on_both_backends!(configured by remembers_2026:
    april_uptime_with_weekly_maintenance_is_met_as_the_reference_works_it_out,
    a_rolling_ratio_counts_the_sub_minute_edges_from_raw_rows,
    a_calendar_month_in_new_york_is_743_hours_across_the_dst_change,
    a_threshold_objective_counts_the_samples_meeting_its_bound,
    a_timeslice_objective_counts_good_slices_of_summed_counts,
    one_service_wide_stream_gives_two_consumers_different_verdicts,
    tagged_data_counts_for_its_consumer_and_the_service_wide_view_only,
    attainment_exactly_at_target_is_met,
    a_credit_tier_applies_strictly_below_its_bound,
    no_data_has_no_attainment_budget_rate_or_credit,
    a_page_alert_fires_when_both_its_lookbacks_burn_fast,
    the_revision_in_force_at_as_of_gives_the_agreements_terms,
    bad_requests_name_their_field,
    unknown_subjects_are_not_found,
    a_draft_agreement_has_no_terms_in_force,
    a_window_of_too_many_slices_is_a_failed_precondition,
);

mod closer {
    use super::*;

    on_both_backends!(backend: evaluate_period_gives_the_calendar_objectives_of_a_closed_period);
}
