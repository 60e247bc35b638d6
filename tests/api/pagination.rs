use accord::proto::v1 as pb;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

const AGREEMENTS: usize = 2_500;

async fn list_all(w: &World, page_size: i32) -> Vec<String> {
    let mut api = w.agreements();
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = api
            .list_agreements(pb::ListAgreementsRequest {
                parent: w.tenant.clone(),
                page_size,
                page_token: token.clone(),
                filter: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.agreements.len() <= page_size as usize);
        names.extend(page.agreements.into_iter().map(|a| a.name));
        if page.next_page_token.is_empty() {
            return names;
        }
        token = page.next_page_token;
    }
}

async fn pagination_returns_every_agreement_once_in_order(s: TestServer) {
    let w = World::new(&s, "acme").await;
    // Created concurrently, so the order of creation says nothing about ids.
    let ids: Vec<String> = (0..AGREEMENTS)
        .map(|i| format!("a{:05}", (i * 7919) % 100_000))
        .collect();
    let mut expected: Vec<String> = ids
        .iter()
        .map(|id| format!("tenants/acme/agreements/{id}"))
        .collect();
    expected.sort();
    let template = w.standard_deal();
    futures::future::join_all(ids.chunks(AGREEMENTS / 8).map(|chunk| {
        let mut api = w.agreements();
        let parent = w.tenant.clone();
        let template = template.clone();
        async move {
            for id in chunk {
                api.create_agreement(pb::CreateAgreementRequest {
                    parent: parent.clone(),
                    agreement_id: id.clone(),
                    agreement: Some(template.clone()),
                    request_id: String::new(),
                })
                .await
                .unwrap();
            }
        }
    }))
    .await;

    for page_size in [1000, 7, 1] {
        assert_eq!(
            list_all(&w, page_size).await,
            expected,
            "page size {page_size}"
        );
    }
}

async fn page_tokens_are_tamper_proof_and_bound_to_their_list(s: TestServer) {
    let w = World::new(&s, "acme").await;
    for i in 0..3 {
        w.draft(&format!("a{i}"), w.standard_deal()).await;
    }
    let mut api = w.agreements();
    let first = api
        .list_agreements(pb::ListAgreementsRequest {
            parent: w.tenant.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let token = first.next_page_token;
    assert!(!token.is_empty());

    let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    raw[2] ^= 0x01;
    let tampered = URL_SAFE_NO_PAD.encode(&raw);
    for bad in [tampered, "not-a-token".to_string(), format!("{token}x")] {
        assert_invalid_field(
            api.list_agreements(pb::ListAgreementsRequest {
                parent: w.tenant.clone(),
                page_size: 1,
                page_token: bad,
                ..Default::default()
            })
            .await,
            "page_token",
        );
    }
    // Reused with another filter, or for another collection.
    assert_invalid_field(
        api.list_agreements(pb::ListAgreementsRequest {
            parent: w.tenant.clone(),
            page_size: 1,
            page_token: token.clone(),
            filter: "kind = CUSTOMER".into(),
        })
        .await,
        "page_token",
    );
    assert_invalid_field(
        w.parties()
            .list_parties(pb::ListPartiesRequest {
                parent: w.tenant.clone(),
                page_size: 1,
                page_token: token.clone(),
            })
            .await,
        "page_token",
    );
    // A different page size is fine (AIP-158).
    let second = api
        .list_agreements(pb::ListAgreementsRequest {
            parent: w.tenant.clone(),
            page_size: 5,
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.agreements.len(), 2);
    assert_code(
        api.list_agreements(pb::ListAgreementsRequest {
            parent: "tenants/ghost".into(),
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
    );
}

on_both_backends!(
    pagination_returns_every_agreement_once_in_order,
    page_tokens_are_tamper_proof_and_bound_to_their_list,
);
