//! GetCreditStatement end to end: which agreements a consumer's statement
//! lists, each agreement's credit (the largest of its objectives'), the
//! liability cap split across a provider's agreements, the totals; and the
//! refusals. Fixed 2026 calendars, as in `compliance.rs`.

use accord::proto::v1 as pb;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

const APRIL: &str = "2026-04-15T00:00:00Z";

fn named(m: pb::Measurement, indicator: &str) -> pb::Measurement {
    pb::Measurement {
        indicator: indicator.into(),
        ..m
    }
}

#[track_caller]
fn credit_of<'a>(s: &'a pb::CreditStatement, agreement: &str) -> &'a pb::AgreementCredit {
    s.agreements
        .iter()
        .find(|a| a.agreement == agreement)
        .unwrap_or_else(|| panic!("{agreement} not in {s:#?}"))
}

async fn a_liability_cap_is_split_across_the_providers_agreements(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let ledger = w.service("ledger").await;
    // Two CUSTOMER agreements of the bank with the same provider; the
    // payments one carries a liability cap of 400.00 EUR.
    let pay_deal = w
        .publish(
            "deal-pay",
            pb::Agreement {
                credits: Some(fee_credits(100_000, &[(0.999, 30.0)])),
                clauses: vec![liability_cap(40_000)],
                ..w.deal(&w.bank, vec![over(monthly(), availability(0.999))])
            },
        )
        .await;
    let ledger_deal = w
        .publish(
            "deal-ledger",
            pb::Agreement {
                services: vec![ledger.clone()],
                credits: Some(fee_credits(100_000, &[(0.999, 20.0)])),
                ..w.deal(&w.bank, vec![over(monthly(), ratio("ledger", 0.999))])
            },
        )
        .await;
    let t = utc("2026-04-10T00:00:00Z");
    w.report_all(vec![
        counts("pay", &w.payments, t, 990, 1000),
        named(counts("ledger", &ledger, t, 995, 1000), "ledger_events"),
    ])
    .await;

    let statement = w.statement_of(&w.bank, Some(APRIL)).await;

    // April is over. payments 0.99 < 0.999: 30 % of 1,000.00 = 300.00;
    // ledger 0.995 < 0.999: 20 % = 200.00. Together 500.00, over the
    // provider's cap of 400.00: each gets its share, 300 × 400 / 500 =
    // 240.00 and 200 × 400 / 500 = 160.00; the total owed is the cap.
    assert_eq!(statement.consumer, w.bank);
    assert_eq!(statement.agreements.len(), 2, "{statement:#?}");
    let pay = credit_of(&statement, &pay_deal.name);
    assert_eq!(pay.provider, w.provider);
    assert_eq!(pay.uncapped, Some(eur(30_000)));
    assert_eq!(pay.credit, Some(eur(24_000)));
    assert!(pay.closed);
    assert_eq!(
        pay.period,
        Some(interval("2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"))
    );
    assert_eq!(pay.objectives.len(), 1);
    let o = &pay.objectives[0];
    assert_eq!(
        (o.key.as_str(), o.service.as_str()),
        ("availability", w.payments.as_str())
    );
    assert_eq!(
        pb::ComplianceStatus::try_from(o.status),
        Ok(pb::ComplianceStatus::Breached)
    );
    assert_close(o.attainment.unwrap(), 0.99);
    let led = credit_of(&statement, &ledger_deal.name);
    assert_eq!(led.uncapped, Some(eur(20_000)));
    assert_eq!(led.credit, Some(eur(16_000)));
    assert_eq!(statement.totals, vec![eur(40_000)]);
    // By agreement name: deal-ledger, then deal-pay.
    assert_eq!(statement.agreements[0].agreement, ledger_deal.name);
}

async fn an_agreements_credit_is_its_largest_objectives_not_their_sum(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let objectives = vec![
        over(monthly(), ratio("checkout", 0.999)),
        over(monthly(), ratio("search", 0.999)),
    ];
    let deal = w
        .publish(
            "deal",
            pb::Agreement {
                credits: Some(fee_credits(100_000, &[(0.999, 10.0), (0.99, 25.0)])),
                ..w.deal(&w.bank, objectives)
            },
        )
        .await;
    let t = utc("2026-04-10T00:00:00Z");
    w.report_all(vec![
        named(counts("c", &w.payments, t, 990, 1000), "checkout_events"),
        named(counts("s", &w.payments, t, 989, 1000), "search_events"),
    ])
    .await;

    let statement = w.statement_of(&w.bank, Some(APRIL)).await;

    // checkout 0.99 (not below 0.99): 10 % = 100.00; search 0.989: 25 % =
    // 250.00. One missed month is one failure: the agreement owes 250.00,
    // not 350.00. No cap.
    let credit = credit_of(&statement, &deal.name);
    assert_eq!(credit.objectives.len(), 2);
    assert_eq!(credit.uncapped, Some(eur(25_000)));
    assert_eq!(credit.credit, Some(eur(25_000)));
    assert_eq!(statement.totals, vec![eur(25_000)]);
}

async fn a_statement_lists_the_agreements_of_own_terms_or_own_data_in_the_period(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let shop = w.party("shop", None).await;
    let quiet = w.party("quiet", None).await;
    let late = w.party("late", None).await;
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                credits: Some(fee_credits(100_000, &[(0.999, 10.0)])),
                ..w.sla(vec![over(monthly(), availability(0.999))])
            },
        )
        .await;
    // The bank has terms of its own on payments: an override.
    w.add_override(&sla.name, "gold", target_override(&w.bank, 0.9999))
        .await;
    let pay = w.payments.clone();
    w.report_all(vec![
        counts("april", &pay, utc("2026-04-10T00:00:00Z"), 995, 1000),
        // The shop has data of its own in April; "late" only in March.
        tagged(
            counts("shop", &pay, utc("2026-04-11T00:00:00Z"), 1, 1),
            &shop,
        ),
        tagged(
            counts("late", &pay, utc("2026-03-11T00:00:00Z"), 1, 1),
            &late,
        ),
    ])
    .await;

    // The bank: 995 / 1,000 = 0.995 < 0.999: 10 % = 100.00. The shop:
    // (995 + 1) / 1,001 = 0.99500… : 100.00 too.
    let bank = w.statement_of(&w.bank, Some(APRIL)).await;
    assert_eq!(bank.agreements.len(), 1, "{bank:#?}");
    assert_eq!(credit_of(&bank, &sla.name).credit, Some(eur(10_000)));
    let shop = w.statement_of(&shop, Some(APRIL)).await;
    assert_eq!(shop.agreements.len(), 1, "{shop:#?}");
    let o = &credit_of(&shop, &sla.name).objectives[0];
    assert_close(o.attainment.unwrap(), 996.0 / 1001.0);
    assert_eq!(shop.totals, vec![eur(10_000)]);
    // Neither terms nor data of their own in April: nothing to list.
    for party in [&quiet, &late] {
        let statement = w.statement_of(party, Some(APRIL)).await;
        assert!(statement.agreements.is_empty(), "{statement:#?}");
        assert!(statement.totals.is_empty(), "{statement:#?}");
    }
    // In March, "late" has data of its own: 1/1, met, nothing owed.
    let march = w.statement_of(&late, Some("2026-03-15T00:00:00Z")).await;
    assert_eq!(march.agreements.len(), 1, "{march:#?}");
    assert_eq!(march.totals, vec![eur(0)]);
}

async fn bad_statement_requests_name_their_field(s: TestServer) {
    partitions_settled(&s).await;
    let w = World::new(&s, "acme").await;
    let good = w.statement_request(&w.bank, Some(APRIL));
    let in_an_hour = prost_types::Timestamp {
        seconds: now_ts().seconds + 3600,
        nanos: 0,
    };
    let cases = vec![
        (
            "parent",
            pb::GetCreditStatementRequest {
                parent: "tenants/".into(),
                ..good.clone()
            },
        ),
        (
            "consumer",
            pb::GetCreditStatementRequest {
                consumer: String::new(),
                ..good.clone()
            },
        ),
        (
            "consumer",
            pb::GetCreditStatementRequest {
                consumer: "tenants/other/parties/bank".into(),
                ..good.clone()
            },
        ),
        (
            "consumer",
            pb::GetCreditStatementRequest {
                consumer: w.payments.clone(),
                ..good.clone()
            },
        ),
        (
            "period_containing",
            pb::GetCreditStatementRequest {
                period_containing: Some(in_an_hour),
                ..good.clone()
            },
        ),
    ];
    for (field, request) in cases {
        assert_invalid_field(w.try_statement(request).await, field);
    }
    let ghost = w.name("parties", "ghost");
    let status = assert_code(
        w.try_statement(w.statement_request(&ghost, None)).await,
        Code::NotFound,
    );
    assert_not_found(&status, &ghost, "unknown consumer");
    // A consumer without agreements has an empty statement.
    let empty = w.try_statement(good).await.unwrap();
    assert!(empty.agreements.is_empty());
}

on_both_backends!(configured by remembers_2026:
    a_liability_cap_is_split_across_the_providers_agreements,
    an_agreements_credit_is_its_largest_objectives_not_their_sum,
    a_statement_lists_the_agreements_of_own_terms_or_own_data_in_the_period,
    bad_statement_requests_name_their_field,
);
