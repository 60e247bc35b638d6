//! The store's contract, run against each backend directly: what every
//! implementation of `Store` must do, whatever the engine. Each case is one
//! async function given a fresh store holding two tenants (`populate`);
//! `contract!` runs it on both engines, so that
//! `cargo test store_contract::<case>` runs one case everywhere.

use std::future::Future;
use std::sync::Arc;

use accord::domain::agreement::{
    Agreement, AgreementFields, AgreementKind, AgreementState, Revision,
};
use accord::domain::api_key::{ApiKey, ApiKeyFields, Role};
use accord::domain::audit::{AuditCursor, AuditEvent, AuditFilter};
use accord::domain::breach::{
    AlertKey, AlertState, Breach, BreachCursor, BreachKey, BreachState, Marker, markers, utc_day,
};
use accord::domain::changes::Change;
use accord::domain::compliance::{EvaluationWindow, Plan, decompose};
use accord::domain::entitlement::Provenance;
use accord::domain::filter::{AgreementFilter, BreachFilter, BreachTerm, FilterTerm, Op};
use accord::domain::measurement::{
    CountBucket, Cutoffs, Level, Measurement, Reason, SampleAt, Value, View, rollups,
};
use accord::domain::names::Id;
use accord::domain::overrides::{Override, OverrideFields};
use accord::domain::party::{Party, PartyFields, PartyKind};
use accord::domain::service::{Service, ServiceFields};
use accord::domain::tenant::{Tenant, TenantFields};
use accord::domain::terms::{Objective, ObjectiveKind, Window};
use accord::error::{Error, Violations};
use accord::store::{Access, MeasurementKey, PeriodEvaluation, Store, Tx};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::{Backend, open_store};

/// Runs each named case on SQLite and on PostgreSQL (when
/// `ACCORD_TEST_DATABASE_URL` is set), as `<case>::sqlite` and
/// `<case>::postgres`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use crate::support::Backend;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::run(Backend::Sqlite, super::$case).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::run(Backend::Postgres, super::$case).await;
                }
            }
        )*
    };
}

contract!(
    commits_what_it_wrote_and_rolls_back_what_it_dropped,
    tenants_round_trip_and_list_in_id_order,
    deleting_a_tenant_removes_what_it_holds_and_nothing_of_another,
    parties_round_trip_and_list_in_pages,
    party_users_name_what_refers_to_a_party,
    services_round_trip_and_name_the_agreements_covering_them,
    agreements_round_trip_with_their_services_labels_and_supports,
    lists_agreements_by_kind_parties_service_and_label,
    lists_agreements_by_state_as_the_domain_derives_it,
    published_agreements_covering_leave_out_drafts_and_other_kinds,
    deleting_an_agreement_removes_its_overrides_and_closes_their_history,
    revisions_list_newest_first_and_are_counted,
    api_keys_round_trip_and_are_found_by_their_hash,
    audit_events_list_newest_first_filtered_and_paged,
    audit_events_list_by_tenant_uid,
    lists_overrides_of_agreement,
    overrides_round_trip_and_deleting_one_closes_its_history,
    a_claimed_request_id_returns_what_the_first_call_stored,
    an_expired_request_id_is_claimed_again,
    deletes_expired_request_ids_of_every_tenant_in_bounded_batches,
    locks_a_tenant_and_announces_a_change,
    the_page_token_secret_is_created_once_and_kept,
    a_taken_key_already_exists,
    a_missing_reference_is_a_failed_precondition,
    deleting_what_another_resource_refers_to_is_a_failed_precondition,
    party_ancestry_follows_the_parents_recorded_at_known_at,
    entitlement_overrides_are_read_as_of_known_at,
    overrides_recorded_after_known_at_are_read_as_first_recorded,
    entitlement_revisions_are_those_of_the_kinds_that_count,
    entitlement_rows_read_everything_a_resolution_needs_as_of_known_at,
    entitlement_rows_of_many_pairs_are_those_of_each_pair_read_alone,
    measurement_keys_are_recorded_once_and_their_digests_read,
    recording_adds_rollups_and_days_only_when_every_key_is_new,
    measurements_are_stored_by_kind_and_read_by_view,
    samples_keep_every_value_exactly,
    downtime_is_read_when_it_overlaps_the_span,
    count_rollups_add_up_per_bucket_and_are_read_per_level_over_many_ranges,
    the_measurement_catalogue_holds_what_a_batch_names_and_the_objectives_covering_it,
    expired_measurements_go_with_their_month_or_row_by_row,
    rows_of_a_month_without_its_partition_are_read_and_expire_all_the_same,
    deleting_a_tenant_removes_its_measurements,
    late_data_markers_stay_due_until_settled_at_the_version_read,
    two_writers_claiming_one_period_evaluation_let_one_through,
    breaches_round_trip_once_per_key_with_their_revisions,
    breaches_list_newest_period_first_by_filter_and_cursor,
    alert_states_start_quiet_and_keep_what_was_set,
    expired_breach_state_goes_and_a_deleted_tenant_takes_its_breaches,
    services_with_terms_for_a_party_are_those_of_its_agreements_and_overrides,
    services_with_tagged_data_are_those_holding_a_consumers_own_data_in_the_span,
    a_30_day_window_over_a_month_of_minute_data_reads_a_few_hundred_rows,
);

async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some((_db, store)) = open_store(backend).await else {
        return;
    };
    populate(&store).await;
    case(store.clone()).await;
    // Closing waits for connections in use; the case has given its back.
    store.close().await;
}

// --- fixtures ------------------------------------------------------------

fn id(s: &str) -> Id {
    Id::parse("id", s).unwrap()
}

/// `hours` after 2026-01-01T00:00Z, when `populate` writes.
fn t(hours: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 0).unwrap() + Duration::hours(hours)
}

fn party_at(tenant: &str, pid: &str, parent: Option<&str>, now: DateTime<Utc>) -> Party {
    Party::new(
        &id(tenant),
        id(pid),
        PartyFields {
            kind: Some(PartyKind::Customer),
            parent: Some(parent.map(id)),
            ..Default::default()
        },
        now,
        &mut Violations::new(),
        "party",
    )
    .unwrap()
}

fn party(tenant: &str, pid: &str, parent: Option<&str>) -> Party {
    party_at(tenant, pid, parent, t(0))
}

fn service(tenant: &str, sid: &str) -> Service {
    Service::new(
        &id(tenant),
        id(sid),
        ServiceFields {
            owner: Some(id("provider")),
            ..Default::default()
        },
        t(0),
        &mut Violations::new(),
        "service",
    )
    .unwrap()
}

/// An agreement of tenant `a` from `provider` over `svc`, for `customer`
/// unless it is service-level, labelled `tier=gold`.
fn agreement(aid: &str, kind: AgreementKind) -> Agreement {
    Agreement::new(
        &id("a"),
        id(aid),
        AgreementFields {
            kind: Some(kind),
            provider: Some(id("provider")),
            consumer: Some((kind != AgreementKind::ServiceLevel).then(|| id("customer"))),
            services: Some(vec![id("svc")]),
            effective_from: Some(t(0)),
            labels: Some([("tier".to_string(), "gold".to_string())].into()),
            ..Default::default()
        },
        t(0),
        &mut Violations::new(),
        "agreement",
    )
    .unwrap()
}

fn published(aid: &str, kind: AgreementKind) -> Agreement {
    Agreement {
        state: AgreementState::Active,
        ..agreement(aid, kind)
    }
}

/// Revision `seq` of `agreement`, recorded at `at`.
fn revision(agreement: &Agreement, seq: i64, at: DateTime<Utc>) -> Revision {
    Revision {
        tenant: agreement.tenant.clone(),
        agreement: agreement.id.clone(),
        id: id(&format!("rev{seq}")),
        seq,
        create_time: at,
        snapshot: agreement.clone(),
    }
}

/// Override `oid` of `agreement` for `consumer`, recorded at `at`.
fn override_at(agreement: &Agreement, oid: &str, consumer: &str, at: DateTime<Utc>) -> Override {
    Override::new(
        agreement,
        id(oid),
        OverrideFields {
            consumer: Some(id(consumer)),
            effective_from: Some(t(0)),
            ..Default::default()
        },
        at,
        &mut Violations::new(),
        "override",
    )
    .unwrap()
}

/// `o` as updated at `at`, with a new display name.
fn updated(o: &Override, display_name: &str, at: DateTime<Utc>) -> Override {
    let mut o = o.clone();
    o.display_name = display_name.into();
    o.meta.touch(at);
    o
}

fn api_key(tenant: &str, kid: &str) -> ApiKey {
    let fields = ApiKeyFields {
        role: Some(Role::Reader),
        ..Default::default()
    };
    ApiKey::new(&id(tenant), id(kid), fields, t(0), &mut Violations::new())
        .unwrap()
        .0
}

fn event(uid: &str, eid: &str, hours: i64, actor: &str, resource: &str) -> AuditEvent {
    AuditEvent {
        tenant: id("a"),
        tenant_uid: uid.into(),
        id: id(eid),
        event_time: t(hours),
        actor: actor.into(),
        method: "/test".into(),
        resource: resource.into(),
        request_id: String::new(),
        before: None,
        after: None,
    }
}

/// Two tenants, `a` and `b`, each with parties `provider` and `customer`
/// and a service `svc`, written at `t(0)`.
async fn populate(store: &Arc<dyn Store>) {
    for tenant in ["a", "b"] {
        let mut tx = writing(store, tenant).await;
        tx.insert_tenant(&Tenant::new(id(tenant), TenantFields::default(), t(0)))
            .await
            .unwrap();
        tx.insert_party(&party(tenant, "provider", None))
            .await
            .unwrap();
        tx.insert_party(&party(tenant, "customer", None))
            .await
            .unwrap();
        tx.insert_service(&service(tenant, "svc")).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn writing(store: &Arc<dyn Store>, tenant: &str) -> Box<dyn Tx> {
    store.begin(Some(&id(tenant)), Access::Write).await.unwrap()
}

async fn reading(store: &Arc<dyn Store>, tenant: &str) -> Box<dyn Tx> {
    store.begin(Some(&id(tenant)), Access::Read).await.unwrap()
}

/// Writes `agreements` to tenant `a`, committed.
async fn insert_agreements(store: &Arc<dyn Store>, agreements: &[&Agreement]) {
    let mut tx = writing(store, "a").await;
    for agreement in agreements {
        tx.insert_agreement(agreement).await.unwrap();
    }
    tx.commit().await.unwrap();
}

fn ids<T>(list: &[T], id: impl Fn(&T) -> &Id) -> Vec<String> {
    list.iter().map(|item| id(item).to_string()).collect()
}

fn agreement_ids(list: &[Agreement]) -> Vec<String> {
    ids(list, |a| &a.id)
}

fn override_ids(list: &[Override]) -> Vec<String> {
    ids(list, |o| &o.id)
}

fn texts(list: &[Id]) -> Vec<&str> {
    list.iter().map(Id::as_str).collect()
}

fn assert_precondition(result: accord::error::Result<()>, says: &str) {
    let error = result.unwrap_err();
    assert!(
        matches!(error, Error::FailedPrecondition { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(says), "{error}");
}

// --- transactions --------------------------------------------------------

async fn commits_what_it_wrote_and_rolls_back_what_it_dropped(store: Arc<dyn Store>) {
    let a = id("a");
    let mut tx = writing(&store, "a").await;
    tx.insert_party(&party("a", "kept", None)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "a").await;
    tx.insert_party(&party("a", "dropped", None)).await.unwrap();
    drop(tx);

    let mut tx = reading(&store, "a").await;
    assert!(tx.get_party(&a, &id("kept")).await.unwrap().is_some());
    assert!(tx.get_party(&a, &id("dropped")).await.unwrap().is_none());
}

// --- tenants -------------------------------------------------------------

async fn tenants_round_trip_and_list_in_id_order(store: Arc<dyn Store>) {
    let a = id("a");
    let mut tx = writing(&store, "a").await;
    let mut tenant = tx.get_tenant_for_update(&a).await.unwrap().unwrap();
    tenant.display_name = "Alpha".into();
    tx.update_tenant(&tenant).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin(None, Access::Read).await.unwrap();
    assert_eq!(tx.get_tenant(&a).await.unwrap(), Some(tenant));
    assert!(tx.get_tenant(&id("ghost")).await.unwrap().is_none());
    let listed = tx.list_tenants(None, 10).await.unwrap();
    assert_eq!(ids(&listed, |t| &t.id), ["a", "b"]);
    let after_a = tx.list_tenants(Some("a"), 10).await.unwrap();
    assert_eq!(ids(&after_a, |t| &t.id), ["b"]);
    assert_eq!(tx.list_tenants(None, 1).await.unwrap().len(), 1);
}

async fn deleting_a_tenant_removes_what_it_holds_and_nothing_of_another(store: Arc<dyn Store>) {
    let (a, b) = (id("a"), id("b"));
    let deal = published("deal", AgreementKind::Customer);
    let mut tx = writing(&store, "a").await;
    tx.insert_agreement(&deal).await.unwrap();
    tx.insert_revision(&revision(&deal, 1, t(1))).await.unwrap();
    tx.insert_override(&override_at(&deal, "o", "customer", t(1)))
        .await
        .unwrap();
    tx.insert_api_key(&api_key("a", "key")).await.unwrap();
    tx.claim_request("a", "r", "f", t(1), t(2)).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    assert_eq!(
        tx.tenant_contents(&a, 10).await.unwrap(),
        [
            "tenants/a/agreements/deal",
            "tenants/a/parties/customer",
            "tenants/a/parties/provider",
            "tenants/a/services/svc",
        ]
    );
    assert_eq!(tx.tenant_contents(&a, 2).await.unwrap().len(), 2);
    tx.delete_tenant(&a).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin(None, Access::Read).await.unwrap();
    assert!(tx.get_tenant(&a).await.unwrap().is_none());
    assert_eq!(
        ids(&tx.list_tenants(None, 10).await.unwrap(), |t| &t.id),
        ["b"]
    );
    drop(tx);
    let mut tx = reading(&store, "a").await;
    assert!(tx.tenant_contents(&a, 10).await.unwrap().is_empty());
    assert!(tx.list_api_keys(&a, None, 10).await.unwrap().is_empty());
    drop(tx);
    let mut tx = reading(&store, "b").await;
    assert_eq!(tx.list_parties(&b, None, 10).await.unwrap().len(), 2);
    assert_eq!(tx.tenant_contents(&b, 10).await.unwrap().len(), 3);
    drop(tx);
    // The id is free again, with a clean slate.
    let mut tx = writing(&store, "a").await;
    tx.insert_tenant(&Tenant::new(a.clone(), TenantFields::default(), t(3)))
        .await
        .unwrap();
    assert!(
        tx.claim_request("a", "r", "f2", t(1), t(2))
            .await
            .unwrap()
            .is_none()
    );
}

// --- parties -------------------------------------------------------------

async fn parties_round_trip_and_list_in_pages(store: Arc<dyn Store>) {
    let a = id("a");
    let mut tx = writing(&store, "a").await;
    let child = party("a", "child", Some("customer"));
    tx.insert_party(&child).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    let mut moved = tx
        .get_party_for_update(&a, &id("child"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved, child);
    moved.parent = Some(id("provider"));
    moved.display_name = "Child".into();
    tx.update_party(&moved).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    assert_eq!(tx.get_party(&a, &id("child")).await.unwrap(), Some(moved));
    assert!(tx.get_party(&a, &id("ghost")).await.unwrap().is_none());
    let page = tx.list_parties(&a, None, 2).await.unwrap();
    assert_eq!(ids(&page, |p| &p.id), ["child", "customer"]);
    let rest = tx.list_parties(&a, Some("customer"), 2).await.unwrap();
    assert_eq!(ids(&rest, |p| &p.id), ["provider"]);
}

async fn party_users_name_what_refers_to_a_party(store: Arc<dyn Store>) {
    let a = id("a");
    let deal = agreement("deal", AgreementKind::Customer);
    let sla = agreement("sla", AgreementKind::ServiceLevel);
    let mut tx = writing(&store, "a").await;
    tx.insert_party(&party("a", "child", Some("customer")))
        .await
        .unwrap();
    tx.insert_agreement(&deal).await.unwrap();
    tx.insert_agreement(&sla).await.unwrap();
    tx.insert_override(&override_at(&sla, "o", "customer", t(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    assert_eq!(
        tx.party_users(&a, &id("customer"), 10).await.unwrap(),
        [
            "tenants/a/agreements/deal",
            "tenants/a/agreements/sla/overrides/o",
            "tenants/a/parties/child",
        ]
    );
    assert_eq!(
        tx.party_users(&a, &id("provider"), 10).await.unwrap(),
        [
            "tenants/a/agreements/deal",
            "tenants/a/agreements/sla",
            "tenants/a/services/svc",
        ]
    );
    assert_eq!(
        tx.party_users(&a, &id("provider"), 1).await.unwrap().len(),
        1
    );
    assert!(
        tx.party_users(&a, &id("child"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

// --- services ------------------------------------------------------------

async fn services_round_trip_and_name_the_agreements_covering_them(store: Arc<dyn Store>) {
    let a = id("a");
    let mut tx = writing(&store, "a").await;
    let mut svc = tx
        .get_service_for_update(&a, &id("svc"))
        .await
        .unwrap()
        .unwrap();
    svc.owner = id("customer");
    tx.update_service(&svc).await.unwrap();
    tx.insert_service(&service("a", "spare")).await.unwrap();
    tx.commit().await.unwrap();
    insert_agreements(
        &store,
        &[
            &agreement("sla", AgreementKind::ServiceLevel),
            &agreement("deal", AgreementKind::Customer),
        ],
    )
    .await;

    let mut tx = writing(&store, "a").await;
    assert_eq!(tx.get_service(&a, &id("svc")).await.unwrap(), Some(svc));
    let listed = tx.list_services(&a, None, 10).await.unwrap();
    assert_eq!(ids(&listed, |s| &s.id), ["spare", "svc"]);
    let after = tx.list_services(&a, Some("spare"), 10).await.unwrap();
    assert_eq!(ids(&after, |s| &s.id), ["svc"]);
    assert_eq!(
        tx.service_users(&a, &id("svc"), 10).await.unwrap(),
        ["tenants/a/agreements/deal", "tenants/a/agreements/sla"]
    );
    assert_eq!(tx.service_users(&a, &id("svc"), 1).await.unwrap().len(), 1);
    assert!(
        tx.service_users(&id("b"), &id("svc"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    tx.delete_service(&a, &id("spare")).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = reading(&store, "a").await;
    assert!(tx.get_service(&a, &id("spare")).await.unwrap().is_none());
}

// --- agreements ----------------------------------------------------------

async fn agreements_round_trip_with_their_services_labels_and_supports(store: Arc<dyn Store>) {
    let a = id("a");
    let sla = agreement("sla", AgreementKind::ServiceLevel);
    let mut ola = agreement("ola", AgreementKind::Operational);
    ola.supports = vec![id("sla")];
    insert_agreements(&store, &[&sla, &ola]).await;

    let mut tx = writing(&store, "a").await;
    assert_eq!(
        tx.agreement_supporters(&a, &id("sla"), 10).await.unwrap(),
        ["tenants/a/agreements/ola"]
    );
    let mut changed = tx
        .get_agreement_for_update(&a, &id("ola"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed, ola);
    changed.supports = Vec::new();
    changed.labels = [("tier".to_string(), "silver".to_string())].into();
    changed.services = Vec::new();
    tx.update_agreement(&changed).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    assert_eq!(
        tx.get_agreement(&a, &id("ola")).await.unwrap(),
        Some(changed)
    );
    assert!(tx.get_agreement(&a, &id("ghost")).await.unwrap().is_none());
    assert!(
        tx.agreement_supporters(&a, &id("sla"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        tx.service_users(&a, &id("svc"), 10).await.unwrap(),
        ["tenants/a/agreements/sla"]
    );
    let gold = AgreementFilter {
        terms: vec![FilterTerm::Label("tier".into(), "gold".into())],
    };
    let listed = tx.list_agreements(&a, &gold, t(0), None, 10).await.unwrap();
    assert_eq!(agreement_ids(&listed), ["sla"]);
}

async fn lists_agreements_by_kind_parties_service_and_label(store: Arc<dyn Store>) {
    let a = id("a");
    let mut spare = agreement("spare", AgreementKind::Customer);
    spare.services = Vec::new();
    spare.labels = Default::default();
    insert_agreements(
        &store,
        &[
            &agreement("sla", AgreementKind::ServiceLevel),
            &agreement("deal", AgreementKind::Customer),
            &spare,
        ],
    )
    .await;

    let mut tx = reading(&store, "a").await;
    let mut list = async |terms: Vec<FilterTerm>, after: Option<&str>| {
        let filter = AgreementFilter { terms };
        let listed = tx.list_agreements(&a, &filter, t(1), after, 10).await;
        agreement_ids(&listed.unwrap())
    };
    assert_eq!(list(vec![], None).await, ["deal", "sla", "spare"]);
    assert_eq!(list(vec![], Some("deal")).await, ["sla", "spare"]);
    let kind = FilterTerm::Kind(AgreementKind::ServiceLevel);
    assert_eq!(list(vec![kind], None).await, ["sla"]);
    let consumer = FilterTerm::Consumer(id("customer"));
    assert_eq!(list(vec![consumer], None).await, ["deal", "spare"]);
    let provider = FilterTerm::Provider(id("customer"));
    assert!(list(vec![provider], None).await.is_empty());
    let service = FilterTerm::Service(id("svc"));
    assert_eq!(list(vec![service.clone()], None).await, ["deal", "sla"]);
    let gold = FilterTerm::Label("tier".into(), "gold".into());
    let both = vec![gold, service, FilterTerm::Consumer(id("customer"))];
    assert_eq!(list(both, None).await, ["deal"]);
    let listed = tx
        .list_agreements(&a, &AgreementFilter::default(), t(1), None, 2)
        .await
        .unwrap();
    assert_eq!(agreement_ids(&listed), ["deal", "sla"]);
    let other = tx
        .list_agreements(&id("b"), &AgreementFilter::default(), t(1), None, 10)
        .await
        .unwrap();
    assert!(other.is_empty());
}

async fn lists_agreements_by_state_as_the_domain_derives_it(store: Arc<dyn Store>) {
    let a = id("a");
    let draft = agreement("draft", AgreementKind::Customer);
    let live = published("live", AgreementKind::Customer);
    let ended = Agreement {
        effective_until: Some(t(2)),
        ..published("ended", AgreementKind::Customer)
    };
    let stopped = Agreement {
        state: AgreementState::Terminated,
        terminate_time: Some(t(1)),
        ..published("stopped", AgreementKind::Customer)
    };
    let all = [&draft, &live, &ended, &stopped];
    insert_agreements(&store, &all).await;

    let mut tx = reading(&store, "a").await;
    for now in [t(1), t(2), t(3)] {
        for (_, state) in AgreementState::ALL {
            let filter = AgreementFilter {
                terms: vec![FilterTerm::State(*state)],
            };
            let listed = tx
                .list_agreements(&a, &filter, now, None, 10)
                .await
                .unwrap();
            let expected: Vec<String> = all
                .iter()
                .filter(|agreement| agreement.state_at(now) == *state)
                .map(|agreement| agreement.id.to_string())
                .collect();
            let mut listed = agreement_ids(&listed);
            listed.sort();
            let mut expected = expected;
            expected.sort();
            assert_eq!(listed, expected, "{state:?} at {now}");
        }
    }
    // The instants that matter: `ended` is ACTIVE before its validity ends
    // and EXPIRED from then on.
    let active = AgreementFilter {
        terms: vec![FilterTerm::State(AgreementState::Active)],
    };
    let before = tx
        .list_agreements(&a, &active, t(1), None, 10)
        .await
        .unwrap();
    assert_eq!(agreement_ids(&before), ["ended", "live"]);
    let after = tx
        .list_agreements(&a, &active, t(2), None, 10)
        .await
        .unwrap();
    assert_eq!(agreement_ids(&after), ["live"]);
}

async fn published_agreements_covering_leave_out_drafts_and_other_kinds(store: Arc<dyn Store>) {
    let a = id("a");
    let mut tx = writing(&store, "a").await;
    tx.insert_service(&service("a", "other")).await.unwrap();
    tx.commit().await.unwrap();
    let mut elsewhere = published("elsewhere", AgreementKind::ServiceLevel);
    elsewhere.services = vec![id("other")];
    let stopped = Agreement {
        state: AgreementState::Terminated,
        ..published("stopped", AgreementKind::ServiceLevel)
    };
    insert_agreements(
        &store,
        &[
            &agreement("draft", AgreementKind::ServiceLevel),
            &published("live", AgreementKind::ServiceLevel),
            &published("deal", AgreementKind::Customer),
            &stopped,
            &elsewhere,
        ],
    )
    .await;

    let mut tx = reading(&store, "a").await;
    let kind = AgreementKind::ServiceLevel;
    let covering = tx
        .published_agreements_covering(&a, kind, &[id("svc")])
        .await
        .unwrap();
    assert_eq!(agreement_ids(&covering), ["live", "stopped"]);
    let both = [id("svc"), id("other")];
    let covering = tx
        .published_agreements_covering(&a, kind, &both)
        .await
        .unwrap();
    assert_eq!(agreement_ids(&covering), ["elsewhere", "live", "stopped"]);
    let customer = tx
        .published_agreements_covering(&a, AgreementKind::Customer, &[id("svc")])
        .await
        .unwrap();
    assert_eq!(agreement_ids(&customer), ["deal"]);
}

async fn deleting_an_agreement_removes_its_overrides_and_closes_their_history(
    store: Arc<dyn Store>,
) {
    let a = id("a");
    let sla = agreement("sla", AgreementKind::ServiceLevel);
    let kept = agreement("kept", AgreementKind::ServiceLevel);
    let first = override_at(&sla, "first", "customer", t(1));
    let second = override_at(&sla, "second", "provider", t(1));
    let untouched = override_at(&kept, "untouched", "customer", t(1));
    let mut tx = writing(&store, "a").await;
    tx.insert_agreement(&sla).await.unwrap();
    tx.insert_agreement(&kept).await.unwrap();
    for o in [&second, &first, &untouched] {
        tx.insert_override(o).await.unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    let removed = tx.delete_agreement(&a, &id("sla"), t(2)).await.unwrap();
    assert_eq!(removed, [first.clone(), second.clone()]);
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    assert!(tx.get_agreement(&a, &id("sla")).await.unwrap().is_none());
    assert!(
        tx.list_overrides(&a, &id("sla"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tx.service_users(&a, &id("svc"), 10)
            .await
            .unwrap()
            .iter()
            .all(|name| !name.ends_with("/sla"))
    );
    let agreements = [id("sla"), id("kept")];
    let then = tx
        .entitlement_overrides(&a, &agreements, t(1))
        .await
        .unwrap();
    assert_eq!(override_ids(&then), ["untouched", "first", "second"]);
    let now = tx
        .entitlement_overrides(&a, &agreements, t(2))
        .await
        .unwrap();
    assert_eq!(override_ids(&now), ["untouched"]);
    // A new agreement under the same id does not bring them back.
    tx.insert_agreement(&sla).await.unwrap();
    let later = tx
        .entitlement_overrides(&a, &[id("sla")], t(3))
        .await
        .unwrap();
    assert!(later.is_empty());
}

// --- revisions -----------------------------------------------------------

async fn revisions_list_newest_first_and_are_counted(store: Arc<dyn Store>) {
    let a = id("a");
    let sla = published("sla", AgreementKind::ServiceLevel);
    let mut tx = writing(&store, "a").await;
    tx.insert_agreement(&sla).await.unwrap();
    for seq in 1..=3 {
        tx.insert_revision(&revision(&sla, seq, t(seq)))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    let seqs = |list: Vec<Revision>| list.into_iter().map(|r| r.seq).collect::<Vec<_>>();
    let sla_id = id("sla");
    assert_eq!(
        seqs(tx.list_revisions(&a, &sla_id, None, 10).await.unwrap()),
        [3, 2, 1]
    );
    assert_eq!(
        seqs(tx.list_revisions(&a, &sla_id, Some(3), 1).await.unwrap()),
        [2]
    );
    assert_eq!(tx.count_revisions(&a, &sla_id).await.unwrap(), 3);
    assert_eq!(tx.count_revisions(&a, &id("ghost")).await.unwrap(), 0);
    assert_eq!(
        tx.get_revision(&a, &sla_id, &id("rev2")).await.unwrap(),
        Some(revision(&sla, 2, t(2)))
    );
    assert!(
        tx.get_revision(&id("b"), &sla_id, &id("rev1"))
            .await
            .unwrap()
            .is_none()
    );
}

// --- API keys ------------------------------------------------------------

async fn api_keys_round_trip_and_are_found_by_their_hash(store: Arc<dyn Store>) {
    let a = id("a");
    let key = api_key("a", "reader");
    let mut tx = writing(&store, "a").await;
    tx.insert_api_key(&key).await.unwrap();
    tx.insert_api_key(&api_key("a", "another")).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    let mut revoked = tx
        .get_api_key_for_update(&a, &id("reader"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked, key);
    revoked.revoke_time = Some(t(1));
    tx.update_api_key(&revoked).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    assert_eq!(
        tx.get_api_key(&a, &id("reader")).await.unwrap(),
        Some(revoked.clone())
    );
    let listed = tx.list_api_keys(&a, None, 10).await.unwrap();
    assert_eq!(ids(&listed, |k| &k.id), ["another", "reader"]);
    let after = tx.list_api_keys(&a, Some("another"), 10).await.unwrap();
    assert_eq!(ids(&after, |k| &k.id), ["reader"]);
    drop(tx);
    // Authentication looks a key up before it knows the tenant.
    let mut tx = store.begin(None, Access::Read).await.unwrap();
    assert_eq!(tx.find_api_key(&key.key_hash).await.unwrap(), Some(revoked));
    assert!(tx.find_api_key("no such hash").await.unwrap().is_none());
}

// --- audit events --------------------------------------------------------

/// The uid of tenant `a`, which its events carry.
async fn uid_of_a(store: &Arc<dyn Store>) -> String {
    let mut tx = reading(store, "a").await;
    tx.get_tenant(&id("a")).await.unwrap().unwrap().uid
}

async fn audit_events_list_newest_first_filtered_and_paged(store: Arc<dyn Store>) {
    let a = id("a");
    let uid = uid_of_a(&store).await;
    let events = [
        event(&uid, "e1", 1, "alice", "tenants/a/parties/p"),
        event(&uid, "e2", 2, "bob", "tenants/a/parties/p"),
        event(&uid, "e3", 2, "alice", "tenants/a/services/s"),
        event(&uid, "e4", 3, "alice", "tenants/a/parties/p"),
    ];
    let mut tx = writing(&store, "a").await;
    for e in &events {
        tx.insert_audit_event(e).await.unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    let mut list = async |filter: AuditFilter, before: Option<AuditCursor>, limit| {
        let listed = tx
            .list_audit_events(&a, None, &filter, before.as_ref(), limit)
            .await
            .unwrap();
        ids(&listed, |e| &e.id)
    };
    let all = AuditFilter::default();
    assert_eq!(list(all.clone(), None, 10).await, ["e4", "e3", "e2", "e1"]);
    // Events of one instant are ordered by id; a page continues after the
    // last one it returned.
    assert_eq!(list(all.clone(), None, 2).await, ["e4", "e3"]);
    let cursor = events[2].cursor();
    assert_eq!(list(all.clone(), Some(cursor), 10).await, ["e2", "e1"]);
    let alice = AuditFilter {
        actor: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(list(alice, None, 10).await, ["e4", "e3", "e1"]);
    let party = AuditFilter {
        resource: Some("tenants/a/parties/p".into()),
        ..Default::default()
    };
    assert_eq!(list(party, None, 10).await, ["e4", "e2", "e1"]);
    let window = AuditFilter {
        start_time: Some(t(2)),
        end_time: Some(t(3)),
        ..Default::default()
    };
    assert_eq!(list(window, None, 10).await, ["e3", "e2"]);
    let other = tx
        .list_audit_events(&id("b"), None, &AuditFilter::default(), None, 10)
        .await
        .unwrap();
    assert!(other.is_empty());
}

async fn audit_events_list_by_tenant_uid(store: Arc<dyn Store>) {
    let a = id("a");
    let uid = uid_of_a(&store).await;
    // An event of an earlier tenant with the same id, and one of this one.
    let earlier = event("earlier-uid", "e1", 1, "alice", "tenants/a");
    let current = event(&uid, "e2", 2, "alice", "tenants/a");
    let mut tx = writing(&store, "a").await;
    tx.insert_audit_event(&earlier).await.unwrap();
    tx.insert_audit_event(&current).await.unwrap();
    tx.commit().await.unwrap();

    let all = AuditFilter::default();
    let mut tx = reading(&store, "a").await;
    let mine = tx.list_audit_events(&a, Some(&uid), &all, None, 10).await;
    assert_eq!(mine.unwrap(), std::slice::from_ref(&current));
    drop(tx);
    // Every trail of the id is read in the platform scope (show_deleted).
    let mut tx = store.begin(None, Access::Read).await.unwrap();
    let every = tx
        .list_audit_events(&a, None, &all, None, 10)
        .await
        .unwrap();
    assert_eq!(every, [current, earlier.clone()]);
    let theirs = tx.list_audit_events(&a, Some("earlier-uid"), &all, None, 10);
    assert_eq!(theirs.await.unwrap(), [earlier]);
}

// --- overrides -----------------------------------------------------------

async fn lists_overrides_of_agreement(store: Arc<dyn Store>) {
    let a = id("a");
    let sla = agreement("sla", AgreementKind::ServiceLevel);
    let other = agreement("other", AgreementKind::ServiceLevel);
    let mut tx = writing(&store, "a").await;
    tx.insert_agreement(&sla).await.unwrap();
    tx.insert_agreement(&other).await.unwrap();
    for (agreement, oid) in [(&sla, "o2"), (&sla, "o1"), (&sla, "o3"), (&other, "o0")] {
        tx.insert_override(&override_at(agreement, oid, "customer", t(1)))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    let sla_id = id("sla");
    let all = tx.list_overrides(&a, &sla_id, None, 10).await.unwrap();
    assert_eq!(override_ids(&all), ["o1", "o2", "o3"]);
    let page = tx.list_overrides(&a, &sla_id, None, 2).await.unwrap();
    assert_eq!(override_ids(&page), ["o1", "o2"]);
    let rest = tx.list_overrides(&a, &sla_id, Some("o2"), 2).await.unwrap();
    assert_eq!(override_ids(&rest), ["o3"]);
    assert!(
        tx.list_overrides(&id("b"), &sla_id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn overrides_round_trip_and_deleting_one_closes_its_history(store: Arc<dyn Store>) {
    let a = id("a");
    let sla = agreement("sla", AgreementKind::ServiceLevel);
    let first = override_at(&sla, "o", "customer", t(1));
    let mut tx = writing(&store, "a").await;
    tx.insert_agreement(&sla).await.unwrap();
    tx.insert_override(&first).await.unwrap();
    tx.commit().await.unwrap();

    let (sla_id, o) = (id("sla"), id("o"));
    let mut tx = writing(&store, "a").await;
    let stored = tx.get_override_for_update(&a, &sla_id, &o).await.unwrap();
    assert_eq!(stored.as_ref(), Some(&first));
    let second = updated(&first, "second", t(2));
    tx.update_override(&second).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    assert_eq!(
        tx.get_override(&a, &sla_id, &o).await.unwrap(),
        Some(second.clone())
    );
    tx.delete_override(&a, &sla_id, &o, t(3)).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    assert!(tx.get_override(&a, &sla_id, &o).await.unwrap().is_none());
    let at = async |tx: &mut Box<dyn Tx>, hours| {
        tx.entitlement_overrides(&a, &[id("sla")], t(hours))
            .await
            .unwrap()
    };
    assert_eq!(at(&mut tx, 2).await, [second]);
    assert!(at(&mut tx, 3).await.is_empty());
}

// --- request_ids ---------------------------------------------------------

async fn a_claimed_request_id_returns_what_the_first_call_stored(store: Arc<dyn Store>) {
    let mut tx = writing(&store, "a").await;
    let claimed = tx.claim_request("a", "r1", "f1", t(0), t(24)).await;
    assert!(claimed.unwrap().is_none());
    tx.commit().await.unwrap();

    // Before the first call completes, a retry sees the claim alone.
    let mut tx = writing(&store, "a").await;
    let pending = tx.claim_request("a", "r1", "f1", t(1), t(25)).await;
    let pending = pending.unwrap().unwrap();
    assert_eq!(
        (pending.fingerprint.as_str(), pending.response),
        ("f1", None)
    );
    let response = serde_json::json!({"name": "tenants/a/parties/p", "n": 1});
    tx.complete_request("a", "r1", &response).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    let stored = tx.claim_request("a", "r1", "f2", t(2), t(26)).await;
    let stored = stored.unwrap().unwrap();
    assert_eq!(stored.fingerprint, "f1");
    assert_eq!(stored.response, Some(response));
    drop(tx);
    // Claims are per tenant, and the platform's ("") are its own.
    let mut tx = writing(&store, "b").await;
    let other = tx.claim_request("b", "r1", "f1", t(2), t(26)).await;
    assert!(other.unwrap().is_none());
    tx.commit().await.unwrap();
    let mut tx = store.begin(None, Access::Write).await.unwrap();
    let platform = tx.claim_request("", "r1", "f1", t(2), t(26)).await;
    assert!(platform.unwrap().is_none());
}

async fn an_expired_request_id_is_claimed_again(store: Arc<dyn Store>) {
    let mut tx = writing(&store, "a").await;
    tx.claim_request("a", "r", "first", t(0), t(1))
        .await
        .unwrap();
    tx.complete_request("a", "r", &serde_json::json!({"first": true}))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    let live = tx.claim_request("a", "r", "second", t(0) + Duration::minutes(59), t(2));
    assert_eq!(live.await.unwrap().unwrap().fingerprint, "first");
    drop(tx);
    // At its expiry the id is free: the claim takes the row over, response
    // and all.
    let mut tx = writing(&store, "a").await;
    let taken = tx.claim_request("a", "r", "second", t(1), t(2)).await;
    assert!(taken.unwrap().is_none());
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "a").await;
    let again = tx.claim_request("a", "r", "third", t(1), t(3)).await;
    let again = again.unwrap().unwrap();
    assert_eq!(
        (again.fingerprint.as_str(), again.response),
        ("second", None)
    );
}

async fn deletes_expired_request_ids_of_every_tenant_in_bounded_batches(store: Arc<dyn Store>) {
    for (tenant, request_id, expire) in [
        ("a", "gone-1", 1),
        ("a", "gone-2", 2),
        ("b", "gone-3", 3),
        ("a", "live", 10),
    ] {
        let mut tx = writing(&store, tenant).await;
        tx.claim_request(tenant, request_id, "f", t(0), t(expire))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = store.begin(None, Access::Write).await.unwrap();
    tx.claim_request("", "platform", "f", t(0), t(4))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut swept = Vec::new();
    loop {
        let mut tx = store.begin(None, Access::Write).await.unwrap();
        let deleted = tx.delete_expired_requests(t(5), 2).await.unwrap();
        tx.commit().await.unwrap();
        assert!(deleted <= 2);
        swept.push(deleted);
        if deleted == 0 {
            break;
        }
    }
    assert_eq!(swept, [2, 2, 0]);
    // The live one is still claimed; the swept ones are free.
    let mut tx = writing(&store, "a").await;
    let live = tx.claim_request("a", "live", "other", t(5), t(20)).await;
    assert_eq!(live.unwrap().unwrap().fingerprint, "f");
    let gone = tx.claim_request("a", "gone-1", "other", t(0), t(20)).await;
    assert!(gone.unwrap().is_none());
}

// --- locks, notifications, settings --------------------------------------

async fn locks_a_tenant_and_announces_a_change(store: Arc<dyn Store>) {
    let mut tx = writing(&store, "a").await;
    tx.lock_tenant(&id("a")).await.unwrap();
    tx.insert_party(&party("a", "p", None)).await.unwrap();
    tx.notify(&Change::Everything).await.unwrap();
    tx.commit().await.unwrap();
    // The lock ends with its transaction.
    let mut tx = writing(&store, "a").await;
    tx.lock_tenant(&id("a")).await.unwrap();
    tx.commit().await.unwrap();
}

async fn the_page_token_secret_is_created_once_and_kept(store: Arc<dyn Store>) {
    let first = store.page_token_secret().await.unwrap();
    assert_eq!(first.len(), 64, "32 random bytes in hex");
    assert_eq!(store.page_token_secret().await.unwrap(), first);
}

// --- constraints ---------------------------------------------------------

async fn a_taken_key_already_exists(store: Arc<dyn Store>) {
    let sla = published("sla", AgreementKind::ServiceLevel);
    let o = override_at(&sla, "o", "customer", t(1));
    let key = api_key("a", "key");
    let e = event("u", "e1", 1, "alice", "tenants/a");
    let mut tx = writing(&store, "a").await;
    tx.insert_agreement(&sla).await.unwrap();
    tx.insert_revision(&revision(&sla, 1, t(1))).await.unwrap();
    tx.insert_override(&o).await.unwrap();
    tx.insert_api_key(&key).await.unwrap();
    tx.insert_audit_event(&e).await.unwrap();
    tx.commit().await.unwrap();

    let same_id = Revision {
        id: id("rev1"),
        ..revision(&sla, 2, t(2))
    };
    let same_seq = Revision {
        id: id("another"),
        ..revision(&sla, 1, t(2))
    };
    let another_key = ApiKey {
        key_hash: "another hash".into(),
        ..key.clone()
    };
    let tenant = Tenant::new(id("a"), TenantFields::default(), t(1));
    let exists = [
        "tenants/a",
        "tenants/a/parties/customer",
        "tenants/a/services/svc",
        "tenants/a/agreements/sla",
        "tenants/a/agreements/sla/revisions/rev1",
        "tenants/a/agreements/sla/revisions/another",
        "tenants/a/agreements/sla/overrides/o",
        "tenants/a/apiKeys/key",
        "tenants/a/auditEvents/e1",
    ];
    for (i, expected) in exists.into_iter().enumerate() {
        let mut tx = writing(&store, "a").await;
        let result = match i {
            0 => tx.insert_tenant(&tenant).await,
            1 => tx.insert_party(&party("a", "customer", None)).await,
            2 => tx.insert_service(&service("a", "svc")).await,
            3 => tx.insert_agreement(&sla).await,
            4 => tx.insert_revision(&same_id).await,
            5 => tx.insert_revision(&same_seq).await,
            6 => tx.insert_override(&o).await,
            7 => tx.insert_api_key(&another_key).await,
            _ => tx.insert_audit_event(&e).await,
        };
        let error = result.unwrap_err();
        assert!(
            matches!(&error, Error::AlreadyExists(name) if name == expected),
            "{expected}: {error:?}"
        );
    }
}

async fn a_missing_reference_is_a_failed_precondition(store: Arc<dyn Store>) {
    let mut orphan_service = service("a", "orphan");
    orphan_service.owner = id("ghost");
    let mut orphan_agreement = agreement("orphan", AgreementKind::Customer);
    orphan_agreement.services = vec![id("ghost")];
    let sla = agreement("sla", AgreementKind::ServiceLevel);
    insert_agreements(&store, &[&sla]).await;
    for i in 0..4 {
        let mut tx = writing(&store, "a").await;
        let result = match i {
            0 => tx.insert_party(&party("a", "orphan", Some("ghost"))).await,
            1 => tx.insert_service(&orphan_service).await,
            2 => tx.insert_agreement(&orphan_agreement).await,
            _ => {
                let o = override_at(&sla, "o", "ghost", t(1));
                tx.insert_override(&o).await
            }
        };
        assert_precondition(result, "does not exist");
    }
}

async fn deleting_what_another_resource_refers_to_is_a_failed_precondition(store: Arc<dyn Store>) {
    let (a, now) = (id("a"), t(1));
    insert_agreements(&store, &[&agreement("deal", AgreementKind::Customer)]).await;
    let mut tx = writing(&store, "a").await;
    assert_precondition(tx.delete_party(&a, &id("provider"), now).await, "in use");
    drop(tx);
    let mut tx = writing(&store, "a").await;
    assert_precondition(tx.delete_service(&a, &id("svc")).await, "in use");
}

// --- entitlements, as known at a time ------------------------------------

async fn party_ancestry_follows_the_parents_recorded_at_known_at(store: Arc<dyn Store>) {
    let a = id("a");
    let mut tx = writing(&store, "a").await;
    tx.insert_party(&party_at("a", "holding", None, t(1)))
        .await
        .unwrap();
    tx.insert_party(&party_at("a", "dept", Some("customer"), t(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // At t(3) the customer joins the holding; at t(5) the department goes.
    let mut tx = writing(&store, "a").await;
    let mut customer = tx.get_party(&a, &id("customer")).await.unwrap().unwrap();
    customer.parent = Some(id("holding"));
    customer.meta.touch(t(3));
    tx.update_party(&customer).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "a").await;
    tx.delete_party(&a, &id("dept"), t(5)).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    let dept = id("dept");
    let at = async |tx: &mut Box<dyn Tx>, hours| {
        let ancestry = tx.party_ancestry(&a, &dept, t(hours)).await.unwrap();
        texts(&ancestry).join(" ")
    };
    assert_eq!(at(&mut tx, 0).await, "", "before it existed");
    assert_eq!(at(&mut tx, 2).await, "dept customer");
    assert_eq!(at(&mut tx, 3).await, "dept customer holding");
    assert_eq!(at(&mut tx, 4).await, "dept customer holding");
    assert_eq!(at(&mut tx, 5).await, "", "after it was deleted");
    let customer = tx.party_ancestry(&a, &id("customer"), t(2)).await.unwrap();
    assert_eq!(texts(&customer), ["customer"]);
}

async fn entitlement_overrides_are_read_as_of_known_at(store: Arc<dyn Store>) {
    let a = id("a");
    let sla = agreement("sla", AgreementKind::ServiceLevel);
    let other = agreement("other", AgreementKind::ServiceLevel);
    let first = override_at(&sla, "o", "customer", t(1));
    let second = updated(&first, "second", t(3));
    let mut tx = writing(&store, "a").await;
    tx.insert_agreement(&sla).await.unwrap();
    tx.insert_agreement(&other).await.unwrap();
    tx.insert_override(&first).await.unwrap();
    tx.insert_override(&override_at(&other, "x", "customer", t(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "a").await;
    tx.update_override(&second).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "a").await;
    tx.delete_override(&a, &id("sla"), &id("o"), t(5))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    let at = async |tx: &mut Box<dyn Tx>, hours| {
        tx.entitlement_overrides(&a, &[id("sla")], t(hours))
            .await
            .unwrap()
    };
    assert!(at(&mut tx, 0).await.is_empty());
    assert_eq!(at(&mut tx, 1).await, std::slice::from_ref(&first));
    assert_eq!(at(&mut tx, 2).await, [first]);
    assert_eq!(at(&mut tx, 3).await, std::slice::from_ref(&second));
    assert_eq!(at(&mut tx, 4).await, [second]);
    assert!(at(&mut tx, 5).await.is_empty());
    let both = [id("sla"), id("other")];
    let listed = tx.entitlement_overrides(&a, &both, t(4)).await.unwrap();
    assert_eq!(override_ids(&listed), ["x", "o"]);
    assert!(
        tx.entitlement_overrides(&a, &[], t(4))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn overrides_recorded_after_known_at_are_read_as_first_recorded(store: Arc<dyn Store>) {
    let a = id("a");
    let sla = agreement("sla", AgreementKind::ServiceLevel);
    let early = override_at(&sla, "early", "customer", t(1));
    let late = override_at(&sla, "late", "provider", t(3));
    let mut tx = writing(&store, "a").await;
    tx.insert_agreement(&sla).await.unwrap();
    tx.insert_override(&early).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "a").await;
    tx.insert_override(&late).await.unwrap();
    tx.update_override(&updated(&early, "changed", t(4)))
        .await
        .unwrap();
    tx.update_override(&updated(&late, "changed", t(4)))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    let agreements = [id("sla")];
    let after = async |tx: &mut Box<dyn Tx>, hours| {
        tx.overrides_recorded_after(&a, &agreements, t(hours))
            .await
            .unwrap()
    };
    assert_eq!(after(&mut tx, 0).await, [early, late.clone()]);
    assert_eq!(after(&mut tx, 2).await, [late]);
    assert!(after(&mut tx, 3).await.is_empty());
    assert!(
        tx.overrides_recorded_after(&a, &[], t(0))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Tenant `a` as a resolution sees it: `customer` under `holding`; on `svc`
/// a service-level agreement (revised at t(1) and t(3)) with an override for
/// the customer (t(2)) and one for the provider, a customer agreement for
/// `holding` (t(2)), one for the provider, and an OLA that counts in no
/// resolution. Returns the customer's override.
async fn resolution_world(store: &Arc<dyn Store>) -> Override {
    let a = id("a");
    let mut tx = writing(store, "a").await;
    tx.insert_party(&party_at("a", "holding", None, t(0)))
        .await
        .unwrap();
    let mut customer = tx.get_party(&a, &id("customer")).await.unwrap().unwrap();
    customer.parent = Some(id("holding"));
    customer.meta.touch(t(0));
    tx.update_party(&customer).await.unwrap();
    let sla = published("sla", AgreementKind::ServiceLevel);
    let group = Agreement {
        consumer: Some(id("holding")),
        ..published("group", AgreementKind::Customer)
    };
    let elsewhere = Agreement {
        consumer: Some(id("provider")),
        ..published("elsewhere", AgreementKind::Customer)
    };
    let ola = published("ola", AgreementKind::Operational);
    for agreement in [&sla, &group, &elsewhere, &ola] {
        tx.insert_agreement(agreement).await.unwrap();
    }
    tx.insert_revision(&revision(&sla, 1, t(1))).await.unwrap();
    tx.insert_revision(&revision(&sla, 2, t(3))).await.unwrap();
    tx.insert_revision(&revision(&group, 1, t(2)))
        .await
        .unwrap();
    tx.insert_revision(&revision(&elsewhere, 1, t(1)))
        .await
        .unwrap();
    tx.insert_revision(&revision(&ola, 1, t(1))).await.unwrap();
    let mine = override_at(&sla, "mine", "customer", t(2));
    tx.insert_override(&mine).await.unwrap();
    tx.insert_override(&override_at(&sla, "theirs", "provider", t(2)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    mine
}

fn revision_keys(list: &[Revision]) -> Vec<String> {
    let mut keys: Vec<String> = list
        .iter()
        .map(|r| format!("{}/{}", r.agreement, r.seq))
        .collect();
    keys.sort();
    keys
}

async fn entitlement_revisions_are_those_of_the_kinds_that_count(store: Arc<dyn Store>) {
    resolution_world(&store).await;
    let mut tx = reading(&store, "a").await;
    let revisions = tx
        .entitlement_revisions(&id("a"), &id("svc"))
        .await
        .unwrap();
    // Every consumer's, by agreement then sequence; never the OLA's.
    let keys: Vec<String> = revisions
        .iter()
        .map(|r| format!("{}/{}", r.agreement, r.seq))
        .collect();
    assert_eq!(keys, ["elsewhere/1", "group/1", "sla/1", "sla/2"]);
    assert!(
        tx.entitlement_revisions(&id("b"), &id("svc"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn entitlement_rows_read_everything_a_resolution_needs_as_of_known_at(store: Arc<dyn Store>) {
    let mine = resolution_world(&store).await;
    let (a, customer, svc) = (id("a"), id("customer"), id("svc"));
    let mut tx = reading(&store, "a").await;
    let svc_now = tx.get_service(&a, &svc).await.unwrap();

    let before = tx
        .entitlement_rows(&a, &customer, &svc, t(0) - Duration::hours(1))
        .await
        .unwrap();
    assert!(before.ancestry.is_empty(), "the customer did not exist yet");
    assert_eq!(before.service, svc_now, "the service as it is now");
    assert!(before.revisions.is_empty() && before.overrides.is_empty());

    let early = tx
        .entitlement_rows(&a, &customer, &svc, t(1))
        .await
        .unwrap();
    assert_eq!(texts(&early.ancestry), ["customer", "holding"]);
    assert_eq!(revision_keys(&early.revisions), ["sla/1"]);
    assert!(early.overrides.is_empty());

    let later = tx
        .entitlement_rows(&a, &customer, &svc, t(3))
        .await
        .unwrap();
    assert_eq!(
        revision_keys(&later.revisions),
        ["group/1", "sla/1", "sla/2"]
    );
    assert_eq!(later.overrides, [mine]);
    // The separate reads explanations make agree with the one round trip.
    let ancestry = tx.party_ancestry(&a, &customer, t(3)).await.unwrap();
    assert_eq!(ancestry, later.ancestry);
    let overrides = tx
        .entitlement_overrides(&a, &[id("sla")], t(3))
        .await
        .unwrap();
    let for_ancestry: Vec<Override> = overrides
        .into_iter()
        .filter(|o| ancestry.contains(&o.consumer))
        .collect();
    assert_eq!(for_ancestry, later.overrides);

    let unknown = tx
        .entitlement_rows(&a, &customer, &id("ghost"), t(3))
        .await
        .unwrap();
    assert!(unknown.service.is_none() && unknown.revisions.is_empty());
}

async fn entitlement_rows_of_many_pairs_are_those_of_each_pair_read_alone(store: Arc<dyn Store>) {
    resolution_world(&store).await;
    // A second service with its own base agreement and an override for the
    // holding, so that pairs share consumers and services both ways.
    let a = id("a");
    let mut tx = writing(&store, "a").await;
    tx.insert_service(&service("a", "other")).await.unwrap();
    let mut other = published("other-sla", AgreementKind::ServiceLevel);
    other.services = vec![id("other")];
    tx.insert_agreement(&other).await.unwrap();
    tx.insert_revision(&revision(&other, 1, t(1)))
        .await
        .unwrap();
    tx.insert_override(&override_at(&other, "group", "holding", t(2)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let pairs: Vec<(Id, Id)> = [
        ("customer", "svc"),
        ("holding", "svc"),
        ("provider", "svc"),
        ("customer", "other"),
        ("holding", "other"),
        ("ghost", "svc"),
        ("customer", "ghost"),
        ("customer", "svc"),
    ]
    .iter()
    .map(|(c, s)| (id(c), id(s)))
    .collect();
    let mut tx = reading(&store, "a").await;

    for known_at in [t(0) - Duration::hours(1), t(1), t(2), t(3)] {
        let together = tx.entitlement_rows_for(&a, &pairs, known_at).await.unwrap();

        assert_eq!(together.len(), pairs.len());
        for ((consumer, service), rows) in pairs.iter().zip(together) {
            let alone = tx
                .entitlement_rows(&a, consumer, service, known_at)
                .await
                .unwrap();
            let pair = format!("{consumer} on {service} as known at {known_at}");
            assert_eq!(rows.ancestry, alone.ancestry, "ancestry of {pair}");
            assert_eq!(rows.service, alone.service, "service of {pair}");
            assert_eq!(
                revision_keys(&rows.revisions),
                revision_keys(&alone.revisions),
                "revisions of {pair}"
            );
            assert_eq!(rows.overrides, alone.overrides, "overrides of {pair}");
        }
    }
    // What the pairs read differs from pair to pair: the holding's
    // override applies on `other` to the customer, its descendant.
    let rows = tx
        .entitlement_rows_for(&a, &pairs[3..4], t(3))
        .await
        .unwrap();
    assert_eq!(rows[0].overrides.len(), 1);
    assert_eq!(revision_keys(&rows[0].revisions), ["other-sla/1"]);
    assert!(
        tx.entitlement_rows_for(&a, &[], t(3))
            .await
            .unwrap()
            .is_empty()
    );
}

// --- measurements --------------------------------------------------------

/// 2026-03-10T12:00Z plus `minutes`: a month away from every partition the
/// migration creates around now, so that partition cases own their months.
fn m(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn measurement(mid: &str, consumer: Option<&str>, at: DateTime<Utc>, value: Value) -> Measurement {
    Measurement {
        id: mid.into(),
        service: id("svc"),
        consumer: consumer.map(id),
        indicator: "requests".into(),
        time: at,
        value,
    }
}

fn counted(
    mid: &str,
    consumer: Option<&str>,
    at: DateTime<Utc>,
    good: i64,
    total: i64,
) -> Measurement {
    measurement(mid, consumer, at, Value::Counts { good, total })
}

/// Stores `measurements` in tenant `tenant` with their rollups, committed.
async fn store_measurements(store: &Arc<dyn Store>, tenant: &str, measurements: &[Measurement]) {
    let mut tx = writing(store, tenant).await;
    tx.insert_measurements(&id(tenant), measurements)
        .await
        .unwrap();
    tx.add_count_rollups(&id(tenant), &rollups(measurements.iter()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn customer_view() -> View {
    View::Consumer(id("customer"))
}

/// The (good, total) `view` sees over `ranges`, and how many buckets.
async fn count_sums(
    store: &Arc<dyn Store>,
    tenant: &str,
    view: &View,
    ranges: &[(Level, std::ops::Range<DateTime<Utc>>)],
) -> (i64, i64, usize) {
    let mut tx = reading(store, tenant).await;
    let buckets = tx
        .count_buckets(&id(tenant), &id("svc"), view, "requests", ranges)
        .await
        .unwrap();
    let (g, t) = buckets
        .iter()
        .fold((0, 0), |(g, t), b| (g + b.good, t + b.total));
    (g, t, buckets.len())
}

fn everything() -> std::ops::Range<DateTime<Utc>> {
    t(-24 * 365)..t(24 * 365 * 3)
}

async fn measurement_keys_are_recorded_once_and_their_digests_read(store: Arc<dyn Store>) {
    let a = id("a");
    let key = |kid, digest, at| MeasurementKey {
        id: kid,
        digest,
        time: at,
    };
    let mut tx = writing(&store, "a").await;
    let recorded = tx
        .insert_measurement_keys(&a, &[key("k1", "d1", m(0)), key("k2", "d2", m(1))])
        .await
        .unwrap();
    assert_eq!(sorted(recorded), ["k1", "k2"]);
    let recorded = tx
        .insert_measurement_keys(&a, &[key("k2", "other", m(1)), key("k3", "d3", m(2))])
        .await
        .unwrap();
    assert_eq!(recorded, ["k3"]);
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    let mut digests = tx
        .measurement_digests(&a, &["k1", "k2", "nope"])
        .await
        .unwrap();
    digests.sort();
    assert_eq!(
        digests,
        [("k1".into(), "d1".into()), ("k2".into(), "d2".into())]
    );
    assert!(tx.measurement_digests(&a, &[]).await.unwrap().is_empty());
    drop(tx);
    // Keys are the tenant's own: b records the same ids afresh.
    let mut tx = writing(&store, "b").await;
    assert!(
        tx.measurement_digests(&id("b"), &["k1"])
            .await
            .unwrap()
            .is_empty()
    );
    let recorded = tx
        .insert_measurement_keys(&id("b"), &[key("k1", "b1", m(0))])
        .await
        .unwrap();
    assert_eq!(recorded, ["k1"]);
}

/// `record_measurements` stores what its new keys stand for, and adds the
/// rollups and days derived from all of its candidates only when every key
/// was new: one statement on PostgreSQL, a statement at a time on SQLite.
async fn recording_adds_rollups_and_days_only_when_every_key_is_new(store: Arc<dyn Store>) {
    let a = id("a");
    let one = counted("r1", None, m(0), 9, 10);
    let two = counted("r2", Some("customer"), m(1), 1, 2);
    let sample = measurement("r3", None, m(2), Value::Sample(0.25));
    let candidates = [(&one, "d1"), (&two, "d2"), (&sample, "d3")];
    let refs = || candidates.iter().map(|(m, _)| *m);
    let mut tx = writing(&store, "a").await;
    let recorded = tx
        .record_measurements(&a, &candidates, &rollups(refs()), &markers(refs()), m(5))
        .await
        .unwrap();
    assert_eq!(sorted(recorded.ids), ["r1", "r2", "r3"]);
    assert!(recorded.derived);
    tx.commit().await.unwrap();
    let minute = [(Level::Minute, everything())];
    let raw = [(Level::Raw, everything())];
    assert_eq!(
        count_sums(&store, "a", &View::ServiceWide, &minute).await,
        (10, 12, 2)
    );
    assert_eq!(
        count_sums(&store, "a", &View::ServiceWide, &raw).await,
        (10, 12, 2)
    );
    let mut tx = reading(&store, "a").await;
    let samples = tx
        .samples(
            &a,
            &id("svc"),
            &View::ServiceWide,
            "requests",
            &everything(),
        )
        .await
        .unwrap();
    assert_eq!(samples.len(), 1);
    drop(tx);
    let day = utc_day(m(0));
    let mut platform = store.begin(None, Access::Read).await.unwrap();
    assert_eq!(
        platform.tenants_with_due_markers(m(5), 10).await.unwrap(),
        std::slice::from_ref(&a)
    );
    drop(platform);
    let mut tx = reading(&store, "a").await;
    let due = tx.due_markers(&a, m(5), 10).await.unwrap();
    assert!(due.iter().all(|d| d.marker.day == day && d.version == 1));
    assert_eq!(due.len(), 2, "the untagged and the customer's series");
    drop(tx);

    // r1 again with r4: r4 is stored, but neither the rollups nor the days
    // given (derived from both) are added; the caller adds r4's own.
    let four = counted("r4", None, m(3), 5, 5);
    let candidates = [(&one, "d1"), (&four, "d4")];
    let mut tx = writing(&store, "a").await;
    let recorded = tx
        .record_measurements(&a, &candidates, &rollups(refs()), &markers(refs()), m(6))
        .await
        .unwrap();
    assert_eq!(recorded.ids, ["r4"]);
    assert!(!recorded.derived);
    tx.commit().await.unwrap();
    assert_eq!(
        count_sums(&store, "a", &View::ServiceWide, &raw).await,
        (15, 17, 3)
    );
    assert_eq!(
        count_sums(&store, "a", &View::ServiceWide, &minute).await,
        (10, 12, 2)
    );
    let mut tx = reading(&store, "a").await;
    let due = tx.due_markers(&a, m(6), 10).await.unwrap();
    assert!(due.iter().all(|d| d.version == 1), "not marked again");
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

async fn measurements_are_stored_by_kind_and_read_by_view(store: Arc<dyn Store>) {
    let down = |start, end| Value::Downtime { start, end };
    store_measurements(
        &store,
        "a",
        &[
            counted("c1", None, m(0), 1, 2),
            counted("c2", Some("customer"), m(1), 3, 4),
            counted("c3", Some("provider"), m(2), 5, 6),
            measurement("s1", None, m(0), Value::Sample(1.5)),
            measurement("s2", Some("customer"), m(1), Value::Sample(2.5)),
            measurement("s3", Some("provider"), m(2), Value::Sample(3.5)),
            measurement("d1", None, m(0), down(m(0), m(5))),
            measurement("d2", Some("provider"), m(10), down(m(10), m(20))),
        ],
    )
    .await;
    store_measurements(&store, "b", &[counted("c1", None, m(0), 100, 100)]).await;

    let raw = [(Level::Raw, everything())];
    assert_eq!(
        count_sums(&store, "a", &View::ServiceWide, &raw).await,
        (9, 12, 3)
    );
    assert_eq!(
        count_sums(&store, "a", &customer_view(), &raw).await,
        (4, 6, 2)
    );
    let mut tx = reading(&store, "a").await;
    let a = id("a");
    let samples = |v: Vec<SampleAt>| v.iter().map(|s| (s.time, s.value)).collect::<Vec<_>>();
    let all = tx
        .samples(
            &a,
            &id("svc"),
            &View::ServiceWide,
            "requests",
            &everything(),
        )
        .await
        .unwrap();
    assert_eq!(samples(all), [(m(0), 1.5), (m(1), 2.5), (m(2), 3.5)]);
    let mine = tx
        .samples(&a, &id("svc"), &customer_view(), "requests", &everything())
        .await
        .unwrap();
    assert_eq!(samples(mine), [(m(0), 1.5), (m(1), 2.5)]);
    let span = m(1)..m(2);
    let within = tx
        .samples(&a, &id("svc"), &View::ServiceWide, "requests", &span)
        .await
        .unwrap();
    assert_eq!(samples(within), [(m(1), 2.5)]);
    let down_all = tx
        .downtime(
            &a,
            &id("svc"),
            &View::ServiceWide,
            "requests",
            &everything(),
        )
        .await
        .unwrap();
    assert_eq!(down_all, [m(0)..m(5), m(10)..m(20)]);
    let down_mine = tx
        .downtime(&a, &id("svc"), &customer_view(), "requests", &everything())
        .await
        .unwrap();
    assert_eq!(down_mine, [m(0)..m(5)]);
    // Another indicator or service reads nothing.
    assert!(
        tx.samples(&a, &id("svc"), &View::ServiceWide, "other", &everything())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tx.downtime(
            &a,
            &id("nope"),
            &View::ServiceWide,
            "requests",
            &everything()
        )
        .await
        .unwrap()
        .is_empty()
    );
}

async fn samples_keep_every_value_exactly(store: Arc<dyn Store>) {
    let values = [
        0.1,
        1.0 / 3.0,
        -2.5,
        1e-300,
        -1.7976931348623157e308,
        123_456_789.123_456_78,
        0.0,
        299.99999999999994,
        5e-324,
        -0.0,
        f64::MAX,
        f64::MIN_POSITIVE,
    ];
    let samples: Vec<Measurement> = values
        .iter()
        .enumerate()
        .map(|(i, v)| measurement(&format!("s{i}"), None, m(i as i64), Value::Sample(*v)))
        .collect();
    store_measurements(&store, "a", &samples).await;

    let mut tx = reading(&store, "a").await;
    let read: Vec<u64> = tx
        .samples(
            &id("a"),
            &id("svc"),
            &View::ServiceWide,
            "requests",
            &everything(),
        )
        .await
        .unwrap()
        .iter()
        .map(|s| s.value.to_bits())
        .collect();
    let expected: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
    assert_eq!(read, expected);
}

async fn downtime_is_read_when_it_overlaps_the_span(store: Arc<dyn Store>) {
    let down =
        |mid: &str, start, end| measurement(mid, None, start, Value::Downtime { start, end });
    store_measurements(
        &store,
        "a",
        &[
            down("ends-at-start", m(0), m(10)),
            down("straddles-start", m(5), m(15)),
            down("inside", m(12), m(13)),
            down("straddles-end", m(18), m(25)),
            down("starts-at-end", m(20), m(30)),
            down("covers", m(-60), m(60)),
        ],
    )
    .await;

    let mut tx = reading(&store, "a").await;
    let read = tx
        .downtime(
            &id("a"),
            &id("svc"),
            &View::ServiceWide,
            "requests",
            &(m(10)..m(20)),
        )
        .await
        .unwrap();
    assert_eq!(
        read,
        [m(-60)..m(60), m(5)..m(15), m(12)..m(13), m(18)..m(25)]
    );
}

async fn count_rollups_add_up_per_bucket_and_are_read_per_level_over_many_ranges(
    store: Arc<dyn Store>,
) {
    // Two batches in the same buckets add up; tagged and untagged counts
    // land in their series and in '*'.
    let first = [
        counted("a1", None, m(0), 1, 1),
        counted("a2", Some("customer"), m(0) + Duration::seconds(30), 2, 2),
        counted("a3", None, m(61), 4, 4),
    ];
    let second = [
        counted("b1", None, m(0) + Duration::seconds(59), 8, 8),
        counted("b2", Some("provider"), m(24 * 60), 16, 16),
    ];
    store_measurements(&store, "a", &first).await;
    store_measurements(&store, "a", &second).await;

    let all = View::ServiceWide;
    for level in [Level::Minute, Level::Hour, Level::Day, Level::Raw] {
        assert_eq!(
            count_sums(&store, "a", &all, &[(level, everything())])
                .await
                .0,
            31,
            "{level:?}"
        );
        assert_eq!(
            count_sums(&store, "a", &customer_view(), &[(level, everything())])
                .await
                .0,
            15,
            "{level:?}"
        );
    }
    // The minute of m(0) holds a1, a2 and b1 in one bucket.
    let mut tx = reading(&store, "a").await;
    let minutes = tx
        .count_buckets(
            &id("a"),
            &id("svc"),
            &all,
            "requests",
            &[(Level::Minute, m(0)..m(1))],
        )
        .await
        .unwrap();
    assert_eq!(
        minutes,
        [CountBucket {
            level: Level::Minute,
            start: m(0),
            good: 11,
            total: 11
        }]
    );
    drop(tx);
    // Ranges of several levels in one call: each level's buckets starting
    // inside its ranges, by level then start. Hour 13:00 (a3 at 13:01),
    // minute 12:00 (a1, a2, b1), the raw rows of the next day (b2).
    let ranges = [
        (Level::Day, t(24 * 400)..t(24 * 401)),
        (Level::Minute, m(0)..m(1)),
        (Level::Hour, m(60)..m(120)),
        (Level::Raw, m(24 * 60)..m(24 * 60 + 1)),
        (Level::Minute, m(5)..m(6)),
        (Level::Hour, m(120)..m(60)),
    ];
    let mut tx = reading(&store, "a").await;
    let buckets: Vec<(Level, DateTime<Utc>, i64)> = tx
        .count_buckets(&id("a"), &id("svc"), &all, "requests", &ranges)
        .await
        .unwrap()
        .iter()
        .map(|b| (b.level, b.start, b.good))
        .collect();
    assert_eq!(
        buckets,
        [
            (Level::Raw, m(24 * 60), 16),
            (Level::Minute, m(0), 11),
            (Level::Hour, m(60), 4),
        ]
    );
    drop(tx);
    // Another tenant sees none of it.
    assert_eq!(
        count_sums(&store, "b", &all, &[(Level::Day, everything())]).await,
        (0, 0, 0)
    );
}

async fn the_measurement_catalogue_holds_what_a_batch_names_and_the_objectives_covering_it(
    store: Arc<dyn Store>,
) {
    let objective = |key: &str, indicator: &str, kind| Objective {
        key: key.into(),
        display_name: String::new(),
        indicator: indicator.into(),
        kind,
        target: 0.99,
        threshold: None,
        comparison: None,
        window: None,
        slice_seconds: None,
    };
    let mut sla = agreement("sla", AgreementKind::ServiceLevel);
    sla.objectives = vec![objective("ok", "requests", ObjectiveKind::Ratio)];
    let mut deal = agreement("deal", AgreementKind::Customer);
    deal.objectives = vec![objective("down", "downtime", ObjectiveKind::Uptime)];
    let mut elsewhere = agreement("elsewhere", AgreementKind::ServiceLevel);
    elsewhere.services = vec![id("other")];
    elsewhere.objectives = vec![objective("lat", "latency", ObjectiveKind::Threshold)];
    let mut tx = writing(&store, "a").await;
    tx.insert_service(&service("a", "other")).await.unwrap();
    tx.commit().await.unwrap();
    insert_agreements(&store, &[&sla, &deal, &elsewhere]).await;
    let mut patch = override_at(&sla, "o", "customer", t(1));
    patch.added_objectives = vec![objective("p99", "latency", ObjectiveKind::Threshold)];
    let mut tx = writing(&store, "a").await;
    tx.insert_override(&patch).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    let catalog = tx
        .measurement_catalog(&id("a"), &["svc", "nope"], &["customer", "ghost"])
        .await
        .unwrap();
    drop(tx);

    let judge = |service: &str, consumer: Option<&str>, indicator: &str, value| {
        let m = Measurement {
            service: id(service),
            indicator: indicator.into(),
            ..measurement("x", consumer, m(0), value)
        };
        catalog.judge(&m).map_err(|r| r.reason)
    };
    let counts = Value::Counts { good: 1, total: 1 };
    let sample = Value::Sample(1.0);
    let down = Value::Downtime {
        start: m(0),
        end: m(1),
    };
    assert_eq!(judge("svc", None, "requests", counts), Ok(()));
    assert_eq!(judge("svc", Some("customer"), "downtime", down), Ok(()));
    assert_eq!(judge("svc", None, "latency", sample), Ok(()));
    assert_eq!(
        judge("nope", None, "requests", counts),
        Err(Reason::UnknownService)
    );
    // Asked about neither: not in the catalogue.
    assert_eq!(
        judge("other", None, "latency", sample),
        Err(Reason::UnknownService)
    );
    assert_eq!(
        judge("svc", Some("ghost"), "requests", counts),
        Err(Reason::UnknownConsumer)
    );
    assert_eq!(
        judge("svc", Some("provider"), "requests", counts),
        Err(Reason::UnknownConsumer)
    );
    assert_eq!(
        judge("svc", None, "unused", counts),
        Err(Reason::UnknownIndicator)
    );
    assert_eq!(
        judge("svc", None, "requests", sample),
        Err(Reason::ValueKindMismatch)
    );
    // Another tenant's catalogue holds none of it.
    let mut tx = writing(&store, "b").await;
    let theirs = tx
        .measurement_catalog(&id("b"), &["svc"], &["customer"])
        .await
        .unwrap();
    let m_b = measurement("x", None, m(0), counts);
    assert_eq!(
        theirs.judge(&m_b).map_err(|r| r.reason),
        Err(Reason::UnknownIndicator)
    );
}

/// Keys of `mids` at `at`, each its own digest.
async fn store_keys(store: &Arc<dyn Store>, tenant: &str, mids: &[&str], at: DateTime<Utc>) {
    let keys: Vec<MeasurementKey> = mids
        .iter()
        .map(|mid| MeasurementKey {
            id: mid,
            digest: mid,
            time: at,
        })
        .collect();
    let mut tx = writing(store, tenant).await;
    tx.insert_measurement_keys(&id(tenant), &keys)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn keys_held(store: &Arc<dyn Store>, tenant: &str, mids: &[&str]) -> Vec<String> {
    let mut tx = reading(store, tenant).await;
    let found = tx.measurement_digests(&id(tenant), mids).await.unwrap();
    sorted(found.into_iter().map(|(k, _)| k).collect())
}

/// 00:00Z on the first of `month` of 2026.
fn month(month: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, 1, 0, 0, 0).unwrap()
}

fn date(m: u32) -> chrono::NaiveDate {
    month(m).date_naive()
}

async fn expired_measurements_go_with_their_month_or_row_by_row(store: Arc<dyn Store>) {
    // March and April have partitions (where the engine partitions).
    store
        .partition_measurements((date(3), date(4)), None)
        .await
        .unwrap();
    let old = |mid: &str, value| measurement(mid, None, month(3) + Duration::days(2), value);
    let recent = |mid: &str, value| measurement(mid, None, month(4) + Duration::days(20), value);
    let down = |at: DateTime<Utc>| Value::Downtime {
        start: at,
        end: at + Duration::minutes(5),
    };
    let counts = Value::Counts { good: 1, total: 1 };
    store_measurements(
        &store,
        "a",
        &[
            old("c-old", counts),
            old("s-old", Value::Sample(1.0)),
            old("d-old", down(month(3) + Duration::days(2))),
            recent("c-new", counts),
            recent("s-new", Value::Sample(2.0)),
            recent("d-new", down(month(4) + Duration::days(20))),
        ],
    )
    .await;
    store_keys(&store, "a", &["k-old"], month(3) + Duration::days(2)).await;
    store_keys(&store, "a", &["k-new"], month(4) + Duration::days(20)).await;
    store_keys(&store, "b", &["k-old"], month(3) + Duration::days(2)).await;

    // Everything before April 10 has expired: March whole, April partly.
    let cutoffs = Cutoffs {
        raw_before: month(4) + Duration::days(9),
        keys_before: month(4) + Duration::days(9),
        kept_before: month(4) + Duration::days(9),
    };
    let done = store
        .partition_measurements((date(4), date(5)), Some(&cutoffs))
        .await
        .unwrap();
    let mut deleted = 0;
    for tenant in ["a", "b"] {
        let mut tx = writing(&store, tenant).await;
        deleted += tx
            .delete_expired_measurements(&id(tenant), &cutoffs, 100)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    // Where months are partitions, March's are dropped whole (April's stay,
    // not wholly expired, and May's are made); elsewhere rows are deleted.
    if done.is_empty() {
        assert!(deleted >= 2 + 3 * 3, "{deleted} deleted row by row");
    } else {
        for table in [
            "measurement_counts",
            "measurement_samples",
            "measurement_downtime",
            "count_rollups_minute",
            "count_rollups_hour",
            "count_rollups_day",
        ] {
            assert!(
                done.contains(&format!("dropped {table}_p2026_03")),
                "{done:?}"
            );
            assert!(
                done.contains(&format!("created {table}_p2026_05")),
                "{done:?}"
            );
            assert!(!done.iter().any(|d| d.ends_with("_p2026_04")), "{done:?}");
        }
        assert_eq!(deleted, 2, "only the keys go row by row");
    }
    let a = id("a");
    let all = View::ServiceWide;
    for level in [Level::Raw, Level::Minute, Level::Hour, Level::Day] {
        let march = count_sums(&store, "a", &all, &[(level, month(3)..month(4))]).await;
        let april = count_sums(&store, "a", &all, &[(level, month(4)..month(5))]).await;
        assert_eq!((march.0, april.0), (0, 1), "{level:?}");
    }
    let mut tx = reading(&store, "a").await;
    let samples = tx
        .samples(&a, &id("svc"), &all, "requests", &everything())
        .await
        .unwrap();
    assert_eq!(samples.iter().map(|s| s.value).collect::<Vec<_>>(), [2.0]);
    let downtime = tx
        .downtime(&a, &id("svc"), &all, "requests", &everything())
        .await
        .unwrap();
    assert_eq!(downtime.len(), 1);
    drop(tx);
    assert_eq!(keys_held(&store, "a", &["k-old", "k-new"]).await, ["k-new"]);
    assert!(keys_held(&store, "b", &["k-old"]).await.is_empty());
}

async fn rows_of_a_month_without_its_partition_are_read_and_expire_all_the_same(
    store: Arc<dyn Store>,
) {
    // June has no partition yet: its rows go to the DEFAULT partition (where
    // the engine partitions), and June cannot be partitioned while they are
    // there; they are read, and expire row by row.
    let june = month(6) + Duration::days(3);
    store_measurements(&store, "a", &[counted("c", None, june, 2, 3)]).await;
    let done = store
        .partition_measurements((date(6), date(7)), None)
        .await
        .unwrap();
    for table in [
        "measurement_counts",
        "count_rollups_minute",
        "count_rollups_hour",
        "count_rollups_day",
    ] {
        let june = format!("created {table}_p2026_06");
        assert!(!done.contains(&june), "{done:?}");
    }
    let all = View::ServiceWide;
    let range = [(Level::Hour, month(6)..month(7))];
    assert_eq!(count_sums(&store, "a", &all, &range).await, (2, 3, 1));

    let cutoffs = Cutoffs {
        raw_before: month(7),
        keys_before: month(7),
        kept_before: month(7),
    };
    let mut tx = writing(&store, "a").await;
    let deleted = tx
        .delete_expired_measurements(&id("a"), &cutoffs, 100)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(
        deleted, 7,
        "the raw row and its rollups: three levels, two series"
    );
    assert_eq!(count_sums(&store, "a", &all, &range).await, (0, 0, 0));
    // Now the month can have its partition.
    let done = store
        .partition_measurements((date(6), date(6)), None)
        .await
        .unwrap();
    if !done.is_empty() {
        assert!(
            done.contains(&"created measurement_counts_p2026_06".to_string()),
            "{done:?}"
        );
    }
}

async fn deleting_a_tenant_removes_its_measurements(store: Arc<dyn Store>) {
    let batch = [
        counted("c", None, m(0), 1, 2),
        measurement("s", None, m(0), Value::Sample(1.0)),
        measurement(
            "d",
            None,
            m(0),
            Value::Downtime {
                start: m(0),
                end: m(1),
            },
        ),
    ];
    for tenant in ["a", "b"] {
        store_measurements(&store, tenant, &batch).await;
        store_keys(&store, tenant, &["c", "s", "d"], m(0)).await;
    }

    let mut tx = writing(&store, "a").await;
    tx.delete_tenant(&id("a")).await.unwrap();
    tx.insert_tenant(&Tenant::new(id("a"), TenantFields::default(), t(3)))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let all = View::ServiceWide;
    for level in [Level::Raw, Level::Minute, Level::Hour, Level::Day] {
        let range = [(level, everything())];
        assert_eq!(count_sums(&store, "a", &all, &range).await, (0, 0, 0));
        assert_eq!(count_sums(&store, "b", &all, &range).await, (1, 2, 1));
    }
    assert!(keys_held(&store, "a", &["c", "s", "d"]).await.is_empty());
    assert_eq!(keys_held(&store, "b", &["c", "s", "d"]).await.len(), 3);
    let mut tx = reading(&store, "a").await;
    let a = id("a");
    assert!(
        tx.samples(&a, &id("svc"), &all, "requests", &everything())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tx.downtime(&a, &id("svc"), &all, "requests", &everything())
            .await
            .unwrap()
            .is_empty()
    );
}

// --- breaches -------------------------------------------------------------------

fn marker(service: &str, consumer: &str, day: DateTime<Utc>) -> Marker {
    Marker {
        service: id(service),
        indicator: "requests".into(),
        consumer: consumer.into(),
        day,
    }
}

/// The UTC day `n` days after 2026-01-01.
fn day(n: i64) -> DateTime<Utc> {
    t(24 * n)
}

fn breach_key(agreement: &str, consumer: Option<&str>, period_start: DateTime<Utc>) -> BreachKey {
    BreachKey {
        agreement: id(agreement),
        objective_key: "availability".into(),
        consumer: consumer.map(id),
        service: id("svc"),
        period_start,
    }
}

/// Revision `revision` of the breach of `key` in tenant `tenant`.
fn breach(tenant: &str, key: &BreachKey, revision: i64, attainment: f64) -> Breach {
    Breach {
        tenant: id(tenant),
        id: key.id(),
        agreement: key.agreement.clone(),
        objective_key: key.objective_key.clone(),
        consumer: key.consumer.clone(),
        service: key.service.clone(),
        period_start: key.period_start,
        period_end: key.period_start + Duration::days(1),
        attainment: Some(attainment),
        target: 0.999,
        target_provenance: Provenance {
            agreement: key.agreement.clone(),
            revision: id("r1"),
            override_id: None,
        },
        credit: None,
        revision,
        state: BreachState::Open,
        create_time: t(100),
        update_time: t(100 + revision),
    }
}

async fn late_data_markers_stay_due_until_settled_at_the_version_read(store: Arc<dyn Store>) {
    let markers: std::collections::BTreeSet<Marker> = [
        marker("svc", "", day(1)),
        marker("svc", "customer", day(1)),
        marker("svc", "provider", day(9)),
    ]
    .into();
    let mut tx = writing(&store, "a").await;
    tx.mark_compliance_dirty(&id("a"), &markers, t(48))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Due from the instant of the batch, in the platform scope too.
    let mut platform = store.begin(None, Access::Read).await.unwrap();
    assert!(
        platform
            .tenants_with_due_markers(t(47), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        platform.tenants_with_due_markers(t(48), 10).await.unwrap(),
        [id("a")]
    );
    drop(platform);
    let mut tx = reading(&store, "a").await;
    let due = tx.due_markers(&id("a"), t(48), 10).await.unwrap();
    assert_eq!(due.len(), 3);
    assert!(due.iter().all(|d| d.version == 1));
    assert!(
        tx.due_markers(&id("b"), t(48), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Tagged data by day: the parties, never the untagged series.
    let tagged = tx
        .tagged_consumers(&id("a"), &id("svc"), &(day(1) + Duration::hours(5)..day(2)))
        .await
        .unwrap();
    assert_eq!(tagged, [id("customer")]);
    let tagged = tx
        .tagged_consumers(&id("a"), &id("svc"), &(day(0)..day(10)))
        .await
        .unwrap();
    assert_eq!(tagged, [id("customer"), id("provider")]);
    drop(tx);

    // A batch marks the first again: its version moves, and settling it at
    // the version read before leaves it due.
    let again = [marker("svc", "", day(1))].into();
    let mut tx = writing(&store, "a").await;
    tx.mark_compliance_dirty(&id("a"), &again, t(49))
        .await
        .unwrap();
    assert!(!tx.settle_marker(&id("a"), &due[0], None).await.unwrap());
    assert!(tx.settle_marker(&id("a"), &due[1], None).await.unwrap());
    assert!(
        tx.settle_marker(&id("a"), &due[2], Some(t(60)))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut tx = reading(&store, "a").await;
    let left = tx.due_markers(&id("a"), t(50), 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((&left[0].marker, left[0].version), (&due[0].marker, 2));
    let later = tx.due_markers(&id("a"), t(60), 10).await.unwrap();
    assert_eq!(later.len(), 2);
}

async fn two_writers_claiming_one_period_evaluation_let_one_through(store: Arc<dyn Store>) {
    let key = breach_key("sla", None, day(3));
    let record = |at: i64| PeriodEvaluation {
        key: &key,
        period_end: day(4),
        status: "BREACHED",
        evaluated_at: t(at),
    };
    let mut first = writing(&store, "a").await;
    assert!(
        first
            .claim_period_evaluation(&id("a"), &record(100), 0)
            .await
            .unwrap()
    );

    // The second waits for the first, then finds the generation moved.
    let (second_store, second_key) = (store.clone(), key.clone());
    let second = tokio::spawn(async move {
        let mut tx = writing(&second_store, "a").await;
        let record = PeriodEvaluation {
            key: &second_key,
            period_end: day(4),
            status: "MET",
            evaluated_at: t(101),
        };
        let claimed = tx
            .claim_period_evaluation(&id("a"), &record, 0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        claimed
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        first
            .insert_breach(&breach("a", &key, 1, 0.9))
            .await
            .unwrap()
    );
    first.commit().await.unwrap();
    assert!(!second.await.unwrap(), "the second claim went through too");

    // The generation it would see now lets the next one through.
    let mut tx = writing(&store, "a").await;
    let generations = tx
        .period_generations(&id("a"), None, &[id("svc")], &(day(3)..day(4)))
        .await
        .unwrap();
    assert_eq!(generations, [(key.clone(), 1)]);
    assert!(
        tx.claim_period_evaluation(&id("a"), &record(102), 1)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut tx = reading(&store, "a").await;
    let generations = tx
        .period_generations(&id("a"), None, &[id("svc")], &(day(3)..day(4)))
        .await
        .unwrap();
    assert_eq!(generations, [(key.clone(), 2)]);
    // Another subject's and another tenant's records are apart.
    let consumer = tx
        .period_generations(
            &id("a"),
            Some(&id("customer")),
            &[id("svc")],
            &(day(3)..day(4)),
        )
        .await
        .unwrap();
    assert!(consumer.is_empty());
    drop(tx);
    let mut tx = reading(&store, "b").await;
    let other = tx
        .period_generations(&id("b"), None, &[id("svc")], &(day(0)..day(10)))
        .await
        .unwrap();
    assert!(other.is_empty());
}

async fn breaches_round_trip_once_per_key_with_their_revisions(store: Arc<dyn Store>) {
    let key = breach_key("sla", Some("customer"), day(5));
    let first = breach("a", &key, 1, 0.9);
    let mut tx = writing(&store, "a").await;
    assert!(tx.insert_breach(&first).await.unwrap());
    // The same key again is not a second breach.
    assert!(!tx.insert_breach(&breach("a", &key, 1, 0.8)).await.unwrap());
    tx.commit().await.unwrap();

    let mut tx = writing(&store, "a").await;
    let got = tx.get_breach_for_update(&id("a"), &key.id()).await.unwrap();
    assert_eq!(got.as_ref(), Some(&first));
    let mut second = breach("a", &key, 2, 0.95);
    second.state = BreachState::Withdrawn;
    tx.update_breach(&second).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    assert_eq!(
        tx.get_breach(&id("a"), &key.id()).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        tx.breach_revisions(&id("a"), &key.id()).await.unwrap(),
        [first, second]
    );
    drop(tx);
    let mut tx = reading(&store, "b").await;
    assert_eq!(tx.get_breach(&id("b"), &key.id()).await.unwrap(), None);
}

async fn breaches_list_newest_period_first_by_filter_and_cursor(store: Arc<dyn Store>) {
    let keys = [
        breach_key("sla", None, day(1)),
        breach_key("sla", None, day(2)),
        breach_key("sla", Some("customer"), day(2)),
        breach_key("deal", Some("customer"), day(3)),
    ];
    let mut tx = writing(&store, "a").await;
    for key in &keys {
        assert!(tx.insert_breach(&breach("a", key, 1, 0.9)).await.unwrap());
    }
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "b").await;
    assert!(
        tx.insert_breach(&breach("b", &keys[0], 1, 0.9))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let mut tx = reading(&store, "a").await;
    let a = id("a");
    let listed = |found: Vec<Breach>| -> Vec<(String, DateTime<Utc>)> {
        found
            .into_iter()
            .map(|b| (b.agreement.to_string(), b.period_start))
            .collect()
    };
    let all = tx
        .list_breaches(&a, &BreachFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].period_start, day(3));
    assert_eq!((all[1].period_start, all[2].period_start), (day(2), day(2)));
    assert!(all[1].id < all[2].id);
    assert_eq!(all[3].period_start, day(1));
    // From a cursor: what follows it.
    let after = BreachCursor::of(&all[1]);
    let rest = tx
        .list_breaches(&a, &BreachFilter::default(), Some(&after), 10)
        .await
        .unwrap();
    assert_eq!(rest, all[2..]);
    let limited = tx
        .list_breaches(&a, &BreachFilter::default(), None, 2)
        .await
        .unwrap();
    assert_eq!(limited, all[..2]);
    for (terms, expected) in [
        (
            vec![BreachTerm::Consumer(None)],
            vec![("sla", day(2)), ("sla", day(1))],
        ),
        (
            vec![BreachTerm::Consumer(Some(id("customer")))],
            vec![("deal", day(3)), ("sla", day(2))],
        ),
        (
            vec![BreachTerm::Agreement(id("deal"))],
            vec![("deal", day(3))],
        ),
        (vec![BreachTerm::Service(id("other"))], vec![]),
        (
            vec![
                BreachTerm::PeriodStart(Op::Ge, day(2)),
                BreachTerm::Consumer(None),
            ],
            vec![("sla", day(2))],
        ),
        (
            vec![BreachTerm::PeriodEnd(Op::Le, day(2))],
            vec![("sla", day(1))],
        ),
        (
            vec![BreachTerm::PeriodContaining(day(3) + Duration::hours(23))],
            vec![("deal", day(3))],
        ),
        (vec![BreachTerm::State(BreachState::Withdrawn)], vec![]),
        (vec![BreachTerm::ObjectiveKey("latency".into())], vec![]),
    ] {
        let found = tx
            .list_breaches(
                &a,
                &BreachFilter {
                    terms: terms.clone(),
                },
                None,
                10,
            )
            .await
            .unwrap();
        let expected: Vec<(String, DateTime<Utc>)> = expected
            .into_iter()
            .map(|(agreement, start)| (agreement.to_string(), start))
            .collect();
        let mut found = listed(found);
        found.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        assert_eq!(found, expected, "{terms:?}");
    }
}

async fn alert_states_start_quiet_and_keep_what_was_set(store: Arc<dyn Store>) {
    let key = AlertKey {
        agreement: id("sla"),
        objective_key: "availability".into(),
        consumer: Some(id("customer")),
        service: id("svc"),
        alert: "page-fast".into(),
    };
    let mut tx = writing(&store, "a").await;
    let quiet = tx.lock_alert_state(&id("a"), &key, t(0)).await.unwrap();
    assert_eq!(
        quiet,
        AlertState {
            firing_since: None,
            as_of: t(0)
        }
    );
    let firing = AlertState {
        firing_since: Some(t(5)),
        as_of: t(5),
    };
    tx.set_alert_state(&id("a"), &key, &firing).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "a").await;
    // An origin given later changes nothing of a state recorded.
    assert_eq!(
        tx.lock_alert_state(&id("a"), &key, t(9)).await.unwrap(),
        firing
    );
    let other = AlertKey {
        alert: "page-slow".into(),
        ..key.clone()
    };
    assert_eq!(
        tx.lock_alert_state(&id("a"), &other, t(9))
            .await
            .unwrap()
            .firing_since,
        None
    );
    tx.commit().await.unwrap();
    let mut tx = writing(&store, "b").await;
    assert_eq!(
        tx.lock_alert_state(&id("b"), &key, t(1))
            .await
            .unwrap()
            .firing_since,
        None
    );
    tx.commit().await.unwrap();
}

async fn expired_breach_state_goes_and_a_deleted_tenant_takes_its_breaches(store: Arc<dyn Store>) {
    let old = breach_key("sla", None, day(1));
    let recent = breach_key("sla", None, day(8));
    for tenant in ["a", "b"] {
        let mut tx = writing(&store, tenant).await;
        let markers = [marker("svc", "", day(1)), marker("svc", "", day(8))].into();
        tx.mark_compliance_dirty(&id(tenant), &markers, t(300))
            .await
            .unwrap();
        for (key, end) in [(&old, day(2)), (&recent, day(9))] {
            let record = PeriodEvaluation {
                key,
                period_end: end,
                status: "BREACHED",
                evaluated_at: t(300),
            };
            assert!(
                tx.claim_period_evaluation(&id(tenant), &record, 0)
                    .await
                    .unwrap()
            );
            assert!(
                tx.insert_breach(&breach(tenant, key, 1, 0.5))
                    .await
                    .unwrap()
            );
        }
        tx.commit().await.unwrap();
    }

    // Markers of days and records of periods ended before day 5 go; the
    // breaches themselves stay.
    let mut tx = writing(&store, "a").await;
    assert_eq!(
        tx.delete_expired_breach_state(&id("a"), day(5))
            .await
            .unwrap(),
        2
    );
    tx.commit().await.unwrap();
    let mut tx = reading(&store, "a").await;
    let markers = tx.due_markers(&id("a"), t(300), 10).await.unwrap();
    assert_eq!(
        markers.iter().map(|m| m.marker.day).collect::<Vec<_>>(),
        [day(8)]
    );
    let records = tx
        .period_generations(&id("a"), None, &[id("svc")], &(day(0)..day(10)))
        .await
        .unwrap();
    assert_eq!(records, [(recent.clone(), 1)]);
    let breaches = tx
        .list_breaches(&id("a"), &BreachFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(breaches.len(), 2);
    drop(tx);

    let mut tx = writing(&store, "a").await;
    tx.delete_tenant(&id("a")).await.unwrap();
    tx.insert_tenant(&Tenant::new(id("a"), TenantFields::default(), t(400)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = reading(&store, "a").await;
    assert!(
        tx.list_breaches(&id("a"), &BreachFilter::default(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tx.breach_revisions(&id("a"), &old.id())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tx.due_markers(&id("a"), t(300), 10)
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    let mut tx = reading(&store, "b").await;
    assert_eq!(
        tx.list_breaches(&id("b"), &BreachFilter::default(), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(tx.due_markers(&id("b"), t(300), 10).await.unwrap().len(), 2);
}

// --- what compliance reads --------------------------------------------------

async fn services_with_terms_for_a_party_are_those_of_its_agreements_and_overrides(
    store: Arc<dyn Store>,
) {
    let a = id("a");
    let mut tx = writing(&store, "a").await;
    for sid in ["s2", "s3", "s4", "s5"] {
        tx.insert_service(&service("a", sid)).await.unwrap();
    }
    let on = |mut agreement: Agreement, services: &[&str]| {
        agreement.services = services.iter().map(|s| id(s)).collect();
        agreement
    };
    let deal = on(published("deal", AgreementKind::Customer), &["s2"]);
    let draft = on(agreement("draft-deal", AgreementKind::Customer), &["s3"]);
    let ola = on(published("ola", AgreementKind::Operational), &["s4"]);
    let sla = on(
        published("sla", AgreementKind::ServiceLevel),
        &["svc", "s5"],
    );
    let elsewhere = Agreement {
        consumer: Some(id("provider")),
        ..on(published("elsewhere", AgreementKind::Customer), &["s3"])
    };
    for agreement in [&deal, &draft, &ola, &sla, &elsewhere] {
        tx.insert_agreement(agreement).await.unwrap();
    }
    tx.insert_override(&override_at(&sla, "gold", "customer", t(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let kinds = [AgreementKind::Customer, AgreementKind::Internal];
    let mut tx = reading(&store, "a").await;
    // The customer's published deal (s2) and its override of the SLA (svc,
    // s5); not the draft, not the OLA, not the provider's deal.
    let found = tx
        .services_with_terms_for(&a, &[id("customer")], &kinds)
        .await
        .unwrap();
    assert_eq!(texts(&found), ["s2", "s5", "svc"]);
    let found = tx
        .services_with_terms_for(&a, &[id("provider")], &kinds)
        .await
        .unwrap();
    assert_eq!(texts(&found), ["s3"]);
    let both = tx
        .services_with_terms_for(&a, &[id("customer"), id("provider")], &kinds)
        .await
        .unwrap();
    assert_eq!(texts(&both), ["s2", "s3", "s5", "svc"]);
    assert!(
        tx.services_with_terms_for(&a, &[], &kinds)
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    let mut tx = reading(&store, "b").await;
    let none = tx
        .services_with_terms_for(&id("b"), &[id("customer")], &kinds)
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn services_with_tagged_data_are_those_holding_a_consumers_own_data_in_the_span(
    store: Arc<dyn Store>,
) {
    let mut tx = writing(&store, "a").await;
    for sid in ["s2", "s3", "s4"] {
        tx.insert_service(&service("a", sid)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let of = |sid: &str, m: Measurement| Measurement {
        service: id(sid),
        ..m
    };
    let down = Value::Downtime {
        start: m(-120),
        end: m(5),
    };
    store_measurements(
        &store,
        "a",
        &[
            counted("c", Some("customer"), m(0), 1, 1),
            counted("p", Some("provider"), m(0), 1, 1),
            of(
                "s2",
                measurement("s", Some("customer"), m(10), Value::Sample(1.0)),
            ),
            of("s3", measurement("d", Some("customer"), m(-120), down)),
            of("s4", counted("u", None, m(0), 1, 1)),
        ],
    )
    .await;

    let a = id("a");
    let customer = id("customer");
    let mut tx = reading(&store, "a").await;
    // 12:00-13:00: the customer's counts on svc, its sample on s2, its
    // downtime (10:00-12:05) on s3; not the untagged counts on s4.
    for level in [Level::Hour, Level::Minute] {
        let found = tx
            .services_with_tagged_data(&a, &customer, level, &(m(0)..m(60)))
            .await
            .unwrap();
        assert_eq!(texts(&found), ["s2", "s3", "svc"], "{level:?}");
    }
    let later = tx
        .services_with_tagged_data(&a, &customer, Level::Hour, &(m(60)..m(120)))
        .await
        .unwrap();
    assert!(later.is_empty(), "{later:?}");
    let provider = tx
        .services_with_tagged_data(&a, &id("provider"), Level::Day, &everything())
        .await
        .unwrap();
    assert_eq!(texts(&provider), ["svc"]);
    drop(tx);
    let mut tx = reading(&store, "b").await;
    let none = tx
        .services_with_tagged_data(&id("b"), &customer, Level::Day, &everything())
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// A RATIO objective over a rolling window of `days`.
fn rolling_ratio(days: i64) -> Objective {
    Objective {
        key: "availability".into(),
        display_name: String::new(),
        indicator: "requests".into(),
        kind: ObjectiveKind::Ratio,
        target: 0.999,
        threshold: None,
        comparison: None,
        window: Some(Window::Rolling {
            seconds: days * 86_400,
        }),
        slice_seconds: None,
    }
}

async fn a_30_day_window_over_a_month_of_minute_data_reads_a_few_hundred_rows(
    store: Arc<dyn Store>,
) {
    // One report a minute from 2026-03-01T00:00Z for 30 days and one more
    // minute (43,201), every tenth one bad.
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let reports: Vec<Measurement> = (0..=43_200)
        .map(|k| {
            let good = i64::from(k % 10 != 0);
            counted(
                &format!("m{k}"),
                None,
                start + Duration::minutes(k),
                good,
                1,
            )
        })
        .collect();
    for batch in reports.chunks(10_000) {
        store_measurements(&store, "a", batch).await;
    }

    // Evaluated at 30 s past the last minute, as GetCompliance plans it:
    // the window [start + 30 s, start + 30 d + 30 s) and its lookbacks, cut
    // into pieces, each read from the coarsest rollups that fit.
    let as_of = start + Duration::days(30) + Duration::seconds(30);
    let objective = rolling_ratio(30);
    let window =
        EvaluationWindow::resolve(objective.window.as_ref().unwrap(), as_of, None, None).unwrap();
    let plan = Plan::new(&objective, window, &[]).unwrap();
    let ranges: Vec<(Level, std::ops::Range<DateTime<Utc>>)> = decompose(&plan.pieces)
        .into_iter()
        .map(|(level, r)| (level, r.start..r.end))
        .collect();
    let (good, total, rows) = count_sums(&store, "a", &View::ServiceWide, &ranges).await;

    // Minutes 1 to 43,200 lie in the window (minute 0 is 30 s before it):
    // 43,200 reports, 4,320 of them bad (k = 10, 20, ..., 43,200).
    assert_eq!((good, total), (38_880, 43_200));
    // Day rows for the middle; at each of the nine cuts (the window's
    // start, the seven lookbacks' starts, as_of), all at 30 s past a
    // minute, up to 23 hour rows and 59 minute rows on either side and the
    // raw rows of the half minute: 453 rows here, where minute rollups alone
    // would be 43,200 and raw rows as many.
    assert!(rows <= 600, "{rows} rows read for a 30-day window");
    let per_level = |level: Level| ranges.iter().filter(|(l, _)| *l == level).count();
    assert!(per_level(Level::Day) >= 1, "{ranges:?}");
    assert!(per_level(Level::Raw) >= 1, "{ranges:?}");
}
