use accord::proto::v1 as pb;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

async fn agreements_round_trip_through_their_lifecycle(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut api = w.agreements();
    let mut draft = w.standard_sla();
    draft.labels = [("tier".to_string(), "gold".to_string())].into();
    draft.clauses = vec![pb::Clause {
        kind: pb::ClauseKind::LiabilityCap.into(),
        title: "Liability cap".into(),
        text: "Liability is capped at the annual fee.".into(),
        amount: Some(pb::Money {
            amount_minor: 1_000_000,
            currency_code: "EUR".into(),
        }),
    }];
    draft.credits = Some(pb::CreditSchedule {
        tiers: vec![
            pb::CreditTier {
                attainment_below: 0.999,
                credit_percent: 10.0,
            },
            pb::CreditTier {
                attainment_below: 0.99,
                credit_percent: 25.0,
            },
        ],
        cap_percent: Some(50.0),
        fee: Some(pb::Money {
            amount_minor: 100_000,
            currency_code: "EUR".into(),
        }),
        claim_window: Some(prost_types::Duration {
            seconds: 30 * DAY,
            nanos: 0,
        }),
    });
    draft.exclusions = vec![pb::Exclusion {
        reason: "weekly maintenance".into(),
        schedule: Some(pb::exclusion::Schedule::Recurring(pb::RecurringWindow {
            rrule: "FREQ=WEEKLY;BYDAY=SU".into(),
            start: Some(ts(JAN_2026)),
            duration: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            time_zone: "Europe/Paris".into(),
        })),
    }];
    let created = w.draft("payments-sla", draft.clone()).await;
    assert_eq!(created.name, "tenants/acme/agreements/payments-sla");
    assert_eq!(created.state(), pb::AgreementState::Draft);
    assert_eq!(created.revision_id, "");
    assert_eq!(created.credits, draft.credits);
    assert_eq!(created.exclusions, draft.exclusions);
    assert_eq!(created.clauses, draft.clauses);
    assert_eq!(created.objectives, draft.objectives);

    let got = api
        .get_agreement(pb::GetAgreementRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    let published = api
        .publish_agreement(pb::PublishAgreementRequest {
            name: created.name.clone(),
            etag: created.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.state(), pb::AgreementState::Active);
    assert_eq!(published.revision_id.len(), 8);

    let status = assert_code(
        api.delete_agreement(pb::DeleteAgreementRequest {
            name: created.name.clone(),
            etag: String::new(),
        })
        .await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "AGREEMENT_STATE");

    let status = assert_code(
        api.publish_agreement(pb::PublishAgreementRequest {
            name: created.name.clone(),
            etag: String::new(),
        })
        .await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "AGREEMENT_STATE");

    let terminated = api
        .terminate_agreement(pb::TerminateAgreementRequest {
            name: created.name.clone(),
            etag: published.etag.clone(),
            terminate_time: Some(ts(JAN_2026 + 100 * DAY)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(terminated.state(), pb::AgreementState::Terminated);
    assert_eq!(terminated.terminate_time, Some(ts(JAN_2026 + 100 * DAY)));
    assert_ne!(terminated.revision_id, published.revision_id);

    assert_code(
        api.update_agreement(pb::UpdateAgreementRequest {
            agreement: Some(pb::Agreement {
                name: created.name.clone(),
                display_name: "x".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await,
        Code::FailedPrecondition,
    );
}

async fn drafts_can_be_edited_and_deleted(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut api = w.agreements();
    let created = w.draft("draft", w.standard_deal()).await;
    let updated = w
        .update(
            &created.name,
            pb::Agreement {
                objectives: vec![availability(0.9995)],
                etag: created.etag.clone(),
                ..Default::default()
            },
            &["objectives"],
        )
        .await;
    assert_eq!(updated.objectives[0].target, 0.9995);
    assert_eq!(updated.consumer, w.bank, "fields outside the mask are kept");
    assert_eq!(updated.revision_id, "", "drafts have no revisions");
    assert_code(
        api.delete_agreement(pb::DeleteAgreementRequest {
            name: created.name.clone(),
            etag: created.etag.clone(),
        })
        .await,
        Code::Aborted,
    );
    api.delete_agreement(pb::DeleteAgreementRequest {
        name: created.name.clone(),
        etag: updated.etag,
    })
    .await
    .unwrap();
    assert_code(
        api.get_agreement(pb::GetAgreementRequest { name: created.name })
            .await,
        Code::NotFound,
    );
}

async fn agreement_validation_names_each_field(s: TestServer) {
    let w = World::new(&s, "acme").await;
    World::new(&s, "other").await;
    let base = w.standard_sla();
    let cases: Vec<(&str, pb::Agreement)> = vec![
        (
            "agreement.kind",
            pb::Agreement {
                kind: 0,
                ..base.clone()
            },
        ),
        (
            "agreement.provider",
            pb::Agreement {
                provider: String::new(),
                ..base.clone()
            },
        ),
        (
            "agreement.provider",
            pb::Agreement {
                provider: "tenants/acme/parties/ghost".into(),
                ..base.clone()
            },
        ),
        (
            "agreement.provider",
            pb::Agreement {
                provider: "tenants/other/parties/platform".into(),
                ..base.clone()
            },
        ),
        (
            "agreement.consumer",
            pb::Agreement {
                consumer: w.bank.clone(),
                ..base.clone()
            },
        ),
        (
            "agreement.consumer",
            pb::Agreement {
                consumer: String::new(),
                ..w.standard_deal()
            },
        ),
        (
            "agreement.services",
            pb::Agreement {
                services: vec![],
                ..base.clone()
            },
        ),
        (
            "agreement.services[0]",
            pb::Agreement {
                services: vec!["tenants/acme/services/ghost".into()],
                ..base.clone()
            },
        ),
        (
            "agreement.services[1]",
            pb::Agreement {
                services: vec![w.payments.clone(), w.payments.clone()],
                ..base.clone()
            },
        ),
        (
            "agreement.effective_from",
            pb::Agreement {
                effective_from: None,
                ..base.clone()
            },
        ),
        (
            "agreement.effective_until",
            pb::Agreement {
                effective_until: Some(ts(JAN_2026 - DAY)),
                ..base.clone()
            },
        ),
        (
            "agreement.objectives[0].target",
            pb::Agreement {
                objectives: vec![availability(1.5)],
                ..base.clone()
            },
        ),
        (
            "agreement.objectives[0].target",
            pb::Agreement {
                objectives: vec![availability(0.0)],
                ..base.clone()
            },
        ),
        (
            "agreement.objectives[1].key",
            pb::Agreement {
                objectives: vec![availability(0.9), availability(0.99)],
                ..base.clone()
            },
        ),
        (
            "agreement.objectives[0].threshold",
            pb::Agreement {
                objectives: vec![pb::Objective {
                    kind: pb::ObjectiveKind::Threshold.into(),
                    comparison: pb::Comparison::LessThanOrEqual.into(),
                    ..availability(0.99)
                }],
                ..base.clone()
            },
        ),
        (
            "agreement.objectives[0].window.rolling.duration",
            pb::Agreement {
                objectives: vec![pb::Objective {
                    window: Some(pb::Window {
                        window: Some(pb::window::Window::Rolling(pb::RollingWindow {
                            duration: Some(prost_types::Duration {
                                seconds: -5,
                                nanos: 0,
                            }),
                        })),
                    }),
                    ..availability(0.99)
                }],
                ..base.clone()
            },
        ),
        (
            "agreement.objectives[0].window.calendar.time_zone",
            pb::Agreement {
                objectives: vec![pb::Objective {
                    window: Some(pb::Window {
                        window: Some(pb::window::Window::Calendar(pb::CalendarWindow {
                            period: pb::CalendarPeriod::Month.into(),
                            time_zone: "Mars/Olympus".into(),
                        })),
                    }),
                    ..availability(0.99)
                }],
                ..base.clone()
            },
        ),
        (
            "agreement.credits.tiers[1].attainment_below",
            pb::Agreement {
                credits: Some(pb::CreditSchedule {
                    tiers: vec![
                        pb::CreditTier {
                            attainment_below: 0.99,
                            credit_percent: 10.0,
                        },
                        pb::CreditTier {
                            attainment_below: 0.999,
                            credit_percent: 25.0,
                        },
                    ],
                    fee: Some(pb::Money {
                        amount_minor: 1,
                        currency_code: "EUR".into(),
                    }),
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "agreement.credits.fee.currency_code",
            pb::Agreement {
                credits: Some(pb::CreditSchedule {
                    fee: Some(pb::Money {
                        amount_minor: 1,
                        currency_code: "XYZ".into(),
                    }),
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "agreement.exclusions[0].recurring.rrule",
            pb::Agreement {
                exclusions: vec![pb::Exclusion {
                    reason: "maintenance".into(),
                    schedule: Some(pb::exclusion::Schedule::Recurring(pb::RecurringWindow {
                        rrule: "FREQ=NEVER".into(),
                        start: Some(ts(JAN_2026)),
                        duration: Some(prost_types::Duration {
                            seconds: 60,
                            nanos: 0,
                        }),
                        time_zone: String::new(),
                    })),
                }],
                ..base.clone()
            },
        ),
        (
            "agreement.exclusions[0].one_off.end_time",
            pb::Agreement {
                exclusions: vec![pb::Exclusion {
                    reason: "migration".into(),
                    schedule: Some(pb::exclusion::Schedule::OneOff(pb::OneOffWindow {
                        start_time: Some(ts(JAN_2026)),
                        end_time: Some(ts(JAN_2026 - 60)),
                    })),
                }],
                ..base.clone()
            },
        ),
        (
            "agreement.clauses[0].amount",
            pb::Agreement {
                clauses: vec![pb::Clause {
                    kind: pb::ClauseKind::Insurance.into(),
                    title: "Cover".into(),
                    ..Default::default()
                }],
                ..base.clone()
            },
        ),
        (
            "agreement.support.priorities[0].resolution",
            pb::Agreement {
                support: Some(pb::SupportTerms {
                    calendar: None,
                    priorities: vec![pb::PriorityTarget {
                        priority: "P1".into(),
                        response: Some(prost_types::Duration {
                            seconds: 3600,
                            nanos: 0,
                        }),
                        resolution: Some(prost_types::Duration {
                            seconds: 60,
                            nanos: 0,
                        }),
                    }],
                }),
                ..base.clone()
            },
        ),
        (
            "agreement.supports",
            pb::Agreement {
                supports: vec!["tenants/acme/agreements/x".into()],
                ..base.clone()
            },
        ),
        (
            "agreement.labels.Tier",
            pb::Agreement {
                labels: [("Tier".to_string(), "gold".to_string())].into(),
                ..base.clone()
            },
        ),
    ];
    for (field, agreement) in cases {
        assert_invalid_field(w.try_draft("a", agreement).await, field);
    }
    // Every problem of one request is reported, even beside a missing kind.
    let many = pb::Agreement {
        objectives: vec![pb::Objective {
            kind: 0,
            target: 2.0,
            ..availability(0.9)
        }],
        effective_until: Some(ts(JAN_2026 - DAY)),
        ..base.clone()
    };
    let status = w.try_draft("a", many).await.unwrap_err();
    let mut fields: Vec<String> = tonic_types::StatusExt::get_details_bad_request(&status)
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "agreement.objectives[0].kind",
            "agreement.objectives[0].target"
        ]
    );
    assert_invalid_field(
        w.agreements()
            .create_agreement(pb::CreateAgreementRequest {
                parent: "tenants/acme".into(),
                agreement_id: "Bad".into(),
                agreement: Some(base.clone()),
                request_id: String::new(),
            })
            .await,
        "agreement_id",
    );
    assert_code(
        w.agreements()
            .create_agreement(pb::CreateAgreementRequest {
                parent: "tenants/ghost".into(),
                agreement_id: "a".into(),
                agreement: Some(pb::Agreement {
                    provider: "tenants/ghost/parties/p".into(),
                    services: vec!["tenants/ghost/services/s".into()],
                    ..base.clone()
                }),
                request_id: String::new(),
            })
            .await,
        Code::PermissionDenied,
    );
    w.draft("a", base.clone()).await;
    assert_code(w.try_draft("a", base).await, Code::AlreadyExists);
}

async fn overlapping_service_level_agreements_cannot_both_be_active(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.publish(
        "sla-2026",
        pb::Agreement {
            effective_until: Some(ts(JAN_2026 + 365 * DAY)),
            ..w.standard_sla()
        },
    )
    .await;
    let overlapping = w
        .draft(
            "sla-mid",
            pb::Agreement {
                effective_from: Some(ts(JAN_2026 + 100 * DAY)),
                ..w.standard_sla()
            },
        )
        .await;
    let status = assert_code(
        w.try_publish(&overlapping.name).await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "OVERLAPPING_AGREEMENT");
    assert!(
        status
            .message()
            .contains("tenants/acme/agreements/sla-2026"),
        "{status:?}"
    );

    // Back to back is fine.
    w.publish(
        "sla-2027",
        pb::Agreement {
            effective_from: Some(ts(JAN_2026 + 365 * DAY)),
            ..w.standard_sla()
        },
    )
    .await;

    // Customer agreements do not take part.
    w.publish("deal", w.standard_deal()).await;
}

async fn list_agreements_filters(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.publish("sla", w.standard_sla()).await;
    w.draft(
        "deal",
        pb::Agreement {
            labels: [("tier".to_string(), "gold".to_string())].into(),
            ..w.standard_deal()
        },
    )
    .await;
    w.draft(
        "old",
        pb::Agreement {
            effective_from: Some(ts(JAN_2026 - 400 * DAY)),
            effective_until: Some(ts(JAN_2026 - 300 * DAY)),
            ..w.standard_deal()
        },
    )
    .await;
    let list = |filter: &str| {
        let mut api = w.agreements();
        let parent = w.tenant.clone();
        let filter = filter.to_string();
        async move {
            api.list_agreements(pb::ListAgreementsRequest {
                parent,
                filter,
                ..Default::default()
            })
            .await
            .map(|r| {
                r.into_inner()
                    .agreements
                    .into_iter()
                    .map(|a| a.name.rsplit('/').next().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
        }
    };
    assert_eq!(list("").await.unwrap(), ["deal", "old", "sla"]);
    assert_eq!(list("kind = SERVICE_LEVEL").await.unwrap(), ["sla"]);
    assert_eq!(
        list("kind = AGREEMENT_KIND_CUSTOMER").await.unwrap(),
        ["deal", "old"]
    );
    assert_eq!(list("state = ACTIVE").await.unwrap(), ["sla"]);
    assert_eq!(
        list("state = DRAFT AND labels.tier = \"gold\"")
            .await
            .unwrap(),
        ["deal"]
    );
    assert_eq!(
        list(&format!("consumer = \"{}\"", w.bank)).await.unwrap(),
        ["deal", "old"]
    );
    assert_eq!(
        list(&format!("provider = \"{}\"", w.provider))
            .await
            .unwrap(),
        ["deal", "old", "sla"]
    );
    assert_eq!(
        list(&format!("service = \"{}\"", w.payments))
            .await
            .unwrap(),
        ["deal", "old", "sla"]
    );
    assert_eq!(
        list("labels.tier = silver").await.unwrap(),
        Vec::<String>::new()
    );
    assert_invalid_field(list("colour = red").await, "filter");
    assert_invalid_field(list("kind = CUSTOMER OR kind = INTERNAL").await, "filter");
    assert_invalid_field(
        list("consumer = \"tenants/other/parties/bank\"").await,
        "filter",
    );
}

async fn expired_agreements_report_expired(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut api = w.agreements();
    let now = chrono::Utc::now().timestamp();
    let a = w
        .publish(
            "short",
            pb::Agreement {
                effective_from: Some(ts(now - DAY)),
                effective_until: Some(ts(now + 2)),
                ..w.standard_deal()
            },
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let got = api
        .get_agreement(pb::GetAgreementRequest {
            name: a.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.state(), pb::AgreementState::Expired);
    let expired = api
        .list_agreements(pb::ListAgreementsRequest {
            parent: w.tenant.clone(),
            filter: "state = EXPIRED".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expired.agreements.len(), 1);
    assert_code(
        api.terminate_agreement(pb::TerminateAgreementRequest {
            name: a.name,
            etag: String::new(),
            terminate_time: None,
        })
        .await,
        Code::FailedPrecondition,
    );
}

on_both_backends!(
    agreements_round_trip_through_their_lifecycle,
    drafts_can_be_edited_and_deleted,
    agreement_validation_names_each_field,
    overlapping_service_level_agreements_cannot_both_be_active,
    list_agreements_filters,
    expired_agreements_report_expired,
);
