use accord::proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

async fn publishing_and_two_updates_make_three_unchanged_revisions(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut api = w.agreements();
    let draft = w.draft("sla", w.standard_sla()).await;
    let published = w.publish_draft(&draft.name).await;
    let mut snapshots = vec![published.clone()];
    for target in [0.9995, 0.9999] {
        let updated = w
            .update(
                &draft.name,
                pb::Agreement {
                    objectives: vec![availability(target)],
                    etag: snapshots.last().unwrap().etag.clone(),
                    ..Default::default()
                },
                &["objectives"],
            )
            .await;
        assert_ne!(updated.revision_id, snapshots.last().unwrap().revision_id);
        snapshots.push(updated);
    }

    // An update that changes nothing writes no revision and keeps the etag.
    let unchanged = w.set_availability(&draft.name, 0.9999).await;
    assert_eq!(&unchanged, snapshots.last().unwrap());

    let list = api
        .list_agreement_revisions(pb::ListAgreementRevisionsRequest {
            name: draft.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.revisions.len(), 3);
    // Newest first, each holding the agreement exactly as it was.
    for (revision, snapshot) in list.revisions.iter().zip(snapshots.iter().rev()) {
        assert_eq!(revision.revision_id, snapshot.revision_id);
        assert_eq!(
            revision.name,
            format!("{}/revisions/{}", draft.name, snapshot.revision_id)
        );
        assert_eq!(revision.agreement.as_ref(), Some(snapshot));
    }
    let first = api
        .get_agreement_revision(pb::GetAgreementRevisionRequest {
            name: list.revisions[2].name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.agreement.unwrap().objectives[0].target,
        0.999,
        "the first revision is unchanged"
    );

    // Paging through revisions.
    let page = api
        .list_agreement_revisions(pb::ListAgreementRevisionsRequest {
            name: draft.name.clone(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.revisions.len(), 2);
    let rest = api
        .list_agreement_revisions(pb::ListAgreementRevisionsRequest {
            name: draft.name.clone(),
            page_size: 2,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.revisions, vec![list.revisions[2].clone()]);
    assert!(rest.next_page_token.is_empty());

    assert_code(
        api.get_agreement_revision(pb::GetAgreementRevisionRequest {
            name: format!("{}/revisions/nope", draft.name),
        })
        .await,
        Code::NotFound,
    );
    assert_invalid_field(
        api.get_agreement_revision(pb::GetAgreementRevisionRequest {
            name: draft.name.clone(),
        })
        .await,
        "name",
    );
    assert_code(
        api.list_agreement_revisions(pb::ListAgreementRevisionsRequest {
            name: "tenants/acme/agreements/ghost".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
    );
}

async fn published_agreements_keep_their_kind(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let sla = w.publish("sla", w.standard_sla()).await;
    assert_invalid_field(
        w.try_update(
            &sla.name,
            pb::Agreement {
                kind: pb::AgreementKind::Customer.into(),
                consumer: w.bank.clone(),
                ..Default::default()
            },
            &["kind", "consumer"],
        )
        .await,
        "agreement.kind",
    );
}

on_both_backends!(
    publishing_and_two_updates_make_three_unchanged_revisions,
    published_agreements_keep_their_kind,
    concurrent_updates_with_one_etag_let_exactly_one_through,
);

async fn concurrent_updates_with_one_etag_let_exactly_one_through(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let draft = w.draft("sla", w.standard_sla()).await;
    let published = w.publish_draft(&draft.name).await;
    let calls = (0..50).map(|i| {
        let mut api = w.agreements();
        let request = pb::UpdateAgreementRequest {
            agreement: Some(pb::Agreement {
                name: draft.name.clone(),
                display_name: format!("writer {i}"),
                etag: published.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["display_name".into()],
            }),
        };
        tokio::spawn(async move { api.update_agreement(request).await })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let aborted = results
        .iter()
        .filter(|r| matches!(r, Err(status) if status.code() == Code::Aborted))
        .count();
    assert_eq!((ok, aborted), (1, 49));
    let revisions = w.revisions(&draft.name).await;
    assert_eq!(revisions.len(), 2, "publish and the one update");
    let events = w.audit_events(&draft.name).await;
    let methods: Vec<&str> = events.iter().map(|e| e.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "/accord.v1.AgreementService/UpdateAgreement",
            "/accord.v1.AgreementService/PublishAgreement",
            "/accord.v1.AgreementService/CreateAgreement",
        ],
        "one event for the one update that went through"
    );
}
