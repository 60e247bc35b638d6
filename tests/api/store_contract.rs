//! The store's contract, run against each backend directly: what every
//! implementation of `Store` must do, whatever the engine.

use accord::domain::agreement::{
    Agreement, AgreementFields, AgreementKind, AgreementState, Revision,
};
use accord::domain::fields::Meta;
use accord::domain::filter::{AgreementFilter, FilterTerm};
use accord::domain::names::Id;
use accord::domain::party::{Party, PartyFields, PartyKind};
use accord::domain::service::{Service, ServiceFields};
use accord::domain::tenant::{Tenant, TenantFields};
use accord::error::{Error, Violations};
use accord::store::{self, Access, Store};
use chrono::{TimeZone, Utc};
use std::sync::Arc;

use crate::support::{Backend, TestDb};

fn id(s: &str) -> Id {
    Id::parse("id", s).unwrap()
}

async fn open(backend: Backend) -> Option<(TestDb, Arc<dyn Store>)> {
    let (db, url) = TestDb::create(backend).await?;
    let owner_url = db.migration_url().unwrap_or_else(|| url.clone());
    store::migrate(&owner_url, &url).await.unwrap();
    let store = store::connect(&url, 4, accord::config::Config::default().statement_timeout)
        .await
        .unwrap();
    Some((db, store))
}

fn party(tenant: &str, pid: &str, parent: Option<&str>) -> Party {
    let mut v = Violations::new();
    Party::new(
        &id(tenant),
        id(pid),
        PartyFields {
            kind: Some(PartyKind::Customer),
            parent: Some(parent.map(id)),
            ..Default::default()
        },
        Utc::now(),
        &mut v,
        "party",
    )
    .unwrap()
}

fn agreement(tenant: &str, aid: &str, kind: AgreementKind) -> Agreement {
    let mut v = Violations::new();
    Agreement::new(
        &id(tenant),
        id(aid),
        AgreementFields {
            kind: Some(kind),
            provider: Some(id("provider")),
            consumer: Some((kind != AgreementKind::ServiceLevel).then(|| id("customer"))),
            services: Some(vec![id("svc")]),
            effective_from: Some(Utc.timestamp_opt(1_767_225_600, 0).unwrap()),
            labels: Some([("tier".to_string(), "gold".to_string())].into()),
            ..Default::default()
        },
        Utc::now(),
        &mut v,
        "agreement",
    )
    .unwrap()
}

/// Two tenants, each with a provider, a customer and a service `svc`.
async fn populate(store: &Arc<dyn Store>) {
    for t in ["a", "b"] {
        let mut tx = store.begin(Some(&id(t)), Access::Write).await.unwrap();
        tx.insert_tenant(&Tenant::new(id(t), TenantFields::default(), Utc::now()))
            .await
            .unwrap();
        tx.insert_party(&party(t, "provider", None)).await.unwrap();
        tx.insert_party(&party(t, "customer", None)).await.unwrap();
        let mut v = Violations::new();
        let svc = Service::new(
            &id(t),
            id("svc"),
            ServiceFields {
                owner: Some(id("provider")),
                ..Default::default()
            },
            Utc::now(),
            &mut v,
            "service",
        )
        .unwrap();
        tx.insert_service(&svc).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn contract(backend: Backend) {
    let Some((_db, store)) = open(backend).await else {
        return;
    };
    populate(&store).await;
    let (a, b) = (id("a"), id("b"));

    // Reads round-trip what was written, scoped to the tenant.
    let mut tx = store.begin(Some(&a), Access::Read).await.unwrap();
    let provider = tx.get_party(&a, &id("provider")).await.unwrap().unwrap();
    assert_eq!(
        provider,
        party("a", "provider", None).with_meta(provider.meta.clone())
    );
    assert_eq!(tx.list_parties(&a, None, 10).await.unwrap().len(), 2);
    assert_eq!(
        tx.list_parties(&a, Some("customer"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(tx.get_party(&a, &id("ghost")).await.unwrap().is_none());
    drop(tx);

    // Unique keys include the tenant; a duplicate is AlreadyExists.
    let mut tx = store.begin(Some(&a), Access::Write).await.unwrap();
    let err = tx
        .insert_party(&party("a", "customer", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists(ref n) if n == "tenants/a/parties/customer"),
        "{err:?}"
    );
    drop(tx);

    // Foreign keys include the tenant: a parent in another tenant, or missing, is refused.
    let mut tx = store.begin(Some(&a), Access::Write).await.unwrap();
    let err = tx
        .insert_party(&party("a", "orphan", Some("ghost")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition { .. }), "{err:?}");
    drop(tx);

    // Agreements, their side tables and filters.
    let mut tx = store.begin(Some(&a), Access::Write).await.unwrap();
    let sla = agreement("a", "sla", AgreementKind::ServiceLevel);
    let deal = agreement("a", "deal", AgreementKind::Customer);
    tx.insert_agreement(&sla).await.unwrap();
    tx.insert_agreement(&deal).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin(Some(&a), Access::Read).await.unwrap();
    let filter = |terms| AgreementFilter { terms };
    let names = |list: Vec<Agreement>| {
        list.into_iter()
            .map(|a| a.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            tx.list_agreements(&a, &filter(vec![]), Utc::now(), None, 10)
                .await
                .unwrap()
        ),
        ["deal", "sla"]
    );
    assert_eq!(
        names(
            tx.list_agreements(
                &a,
                &filter(vec![FilterTerm::Kind(AgreementKind::ServiceLevel)]),
                Utc::now(),
                None,
                10
            )
            .await
            .unwrap()
        ),
        ["sla"]
    );
    assert_eq!(
        names(
            tx.list_agreements(
                &a,
                &filter(vec![FilterTerm::Consumer(id("customer"))]),
                Utc::now(),
                None,
                10
            )
            .await
            .unwrap()
        ),
        ["deal"]
    );
    assert_eq!(
        names(
            tx.list_agreements(
                &a,
                &filter(vec![
                    FilterTerm::Label("tier".into(), "gold".into()),
                    FilterTerm::Service(id("svc"))
                ]),
                Utc::now(),
                Some("deal"),
                10
            )
            .await
            .unwrap()
        ),
        ["sla"]
    );
    assert_eq!(
        names(
            tx.list_agreements(
                &a,
                &filter(vec![FilterTerm::State(AgreementState::Active)]),
                Utc::now(),
                None,
                10
            )
            .await
            .unwrap()
        ),
        Vec::<String>::new()
    );
    assert!(
        tx.list_agreements(&b, &filter(vec![]), Utc::now(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        tx.service_users(&a, &id("svc"), 10).await.unwrap(),
        ["tenants/a/agreements/deal", "tenants/a/agreements/sla"]
    );
    assert!(
        tx.service_users(&b, &id("svc"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        tx.party_users(&a, &id("customer"), 10).await.unwrap(),
        ["tenants/a/agreements/deal"]
    );
    drop(tx);

    // Revisions: newest first, paged by sequence.
    let mut tx = store.begin(Some(&a), Access::Write).await.unwrap();
    for seq in 1..=3 {
        tx.insert_revision(&Revision {
            tenant: a.clone(),
            agreement: id("sla"),
            id: id(&format!("rev{seq}")),
            seq,
            create_time: Utc::now(),
            snapshot: sla.clone(),
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin(Some(&a), Access::Read).await.unwrap();
    let seqs = |list: Vec<Revision>| list.into_iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(tx.list_revisions(&a, &id("sla"), None, 10).await.unwrap()),
        [3, 2, 1]
    );
    assert_eq!(
        seqs(tx.list_revisions(&a, &id("sla"), Some(3), 1).await.unwrap()),
        [2]
    );
    assert_eq!(tx.count_revisions(&a, &id("sla")).await.unwrap(), 3);
    assert!(
        tx.get_revision(&b, &id("sla"), &id("rev1"))
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);

    // request_id claims: the first claim wins, later ones see its response.
    let mut tx = store.begin(Some(&a), Access::Write).await.unwrap();
    assert!(
        tx.claim_request(
            "a",
            "r1",
            "f1",
            Utc::now(),
            Utc::now() + chrono::Duration::days(1)
        )
        .await
        .unwrap()
        .is_none()
    );
    tx.complete_request("a", "r1", &serde_json::json!({"ok": true}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin(Some(&a), Access::Write).await.unwrap();
    let stored = tx
        .claim_request(
            "a",
            "r1",
            "f2",
            Utc::now(),
            Utc::now() + chrono::Duration::days(1),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.fingerprint, "f1");
    assert_eq!(stored.response, Some(serde_json::json!({"ok": true})));
    drop(tx);
    let mut tx = store.begin(Some(&b), Access::Write).await.unwrap();
    assert!(
        tx.claim_request(
            "b",
            "r1",
            "f1",
            Utc::now(),
            Utc::now() + chrono::Duration::days(1)
        )
        .await
        .unwrap()
        .is_none(),
        "claims are per tenant"
    );
    drop(tx);

    // A rolled-back transaction leaves nothing behind.
    let mut tx = store.begin(Some(&a), Access::Write).await.unwrap();
    tx.insert_party(&party("a", "temp", None)).await.unwrap();
    drop(tx);
    let mut tx = store.begin(Some(&a), Access::Read).await.unwrap();
    assert!(tx.get_party(&a, &id("temp")).await.unwrap().is_none());
    drop(tx);

    // Deleting a tenant removes everything it holds and nothing of another.
    let mut tx = store.begin(Some(&a), Access::Write).await.unwrap();
    assert!(!tx.tenant_contents(&a, 10).await.unwrap().is_empty());
    tx.delete_tenant(&a).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin(Some(&b), Access::Read).await.unwrap();
    assert!(tx.get_tenant(&a).await.unwrap().is_none());
    assert!(tx.list_parties(&a, None, 10).await.unwrap().is_empty());
    assert_eq!(tx.list_parties(&b, None, 10).await.unwrap().len(), 2);
    assert_eq!(tx.list_tenants(None, 10).await.unwrap().len(), 1);
    // Closing waits for connections in use: give this one back first.
    drop(tx);
    store.close().await;
}

trait WithMeta {
    fn with_meta(self, meta: Meta) -> Self;
}

impl WithMeta for Party {
    fn with_meta(mut self, meta: Meta) -> Self {
        self.meta = meta;
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_meets_the_contract() {
    contract(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_meets_the_contract() {
    contract(Backend::Postgres).await;
}
