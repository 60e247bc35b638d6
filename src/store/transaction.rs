//! The one implementation of `Tx`, for every engine: each method is the
//! resource module's function run on the engine's `Connection`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::connection::{Connection, RowLock};
use super::{
    DueMarker, EntitlementRows, MeasurementKey, PeriodEvaluation, Recorded, StoredRequest, Tx,
    agreements, api_keys, audit, breaches, entitlements, measurements, overrides, parties,
    requests, revisions, services, tenants,
};
use crate::domain::agreement::{Agreement, AgreementKind, Revision};
use crate::domain::api_key::ApiKey;
use crate::domain::audit::{AuditCursor, AuditEvent, AuditFilter};
use crate::domain::breach::{
    AlertKey, AlertState, Breach, BreachCursor, BreachKey, BreachState, Marker,
};
use crate::domain::changes::Change;
use crate::domain::filter::{AgreementFilter, BreachFilter};
use crate::domain::measurement::{
    Catalog, CountBucket, Cutoffs, Level, Measurement, RollupKey, SampleAt, View,
};
use crate::domain::names::Id;
use crate::domain::overrides::Override;
use crate::domain::party::Party;
use crate::domain::service::Service;
use crate::domain::tenant::Tenant;
use crate::error::Result;

pub(crate) struct Transaction(Box<dyn Connection>);

impl Transaction {
    pub(crate) fn new(conn: Box<dyn Connection>) -> Self {
        Self(conn)
    }

    fn conn(&mut self) -> &mut dyn Connection {
        &mut *self.0
    }
}

#[async_trait]
impl Tx for Transaction {
    async fn commit(self: Box<Self>) -> Result<()> {
        self.0.commit().await
    }

    async fn lock_tenant(&mut self, tenant: &Id) -> Result<()> {
        self.conn().lock_tenant(tenant).await
    }

    async fn notify(&mut self, change: &Change) -> Result<()> {
        self.conn().notify(change).await
    }

    async fn claim_request(
        &mut self,
        tenant: &str,
        request_id: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        expire_time: DateTime<Utc>,
    ) -> Result<Option<StoredRequest>> {
        requests::claim(
            self.conn(),
            tenant,
            request_id,
            fingerprint,
            now,
            expire_time,
        )
        .await
    }

    async fn complete_request(
        &mut self,
        tenant: &str,
        request_id: &str,
        response: &serde_json::Value,
    ) -> Result<()> {
        requests::complete(self.conn(), tenant, request_id, response).await
    }

    async fn delete_expired_requests(&mut self, now: DateTime<Utc>, limit: i64) -> Result<u64> {
        requests::delete_expired(self.conn(), now, limit).await
    }

    async fn insert_tenant(&mut self, tenant: &Tenant) -> Result<()> {
        tenants::insert(self.conn(), tenant).await
    }

    async fn get_tenant(&mut self, id: &Id) -> Result<Option<Tenant>> {
        tenants::get(self.conn(), id, RowLock::None).await
    }

    async fn get_tenant_for_update(&mut self, id: &Id) -> Result<Option<Tenant>> {
        tenants::get(self.conn(), id, RowLock::ForUpdate).await
    }

    async fn list_tenants(&mut self, after: Option<&str>, limit: i64) -> Result<Vec<Tenant>> {
        tenants::list(self.conn(), after, limit).await
    }

    async fn update_tenant(&mut self, tenant: &Tenant) -> Result<()> {
        tenants::update(self.conn(), tenant).await
    }

    async fn tenant_contents(&mut self, id: &Id, limit: i64) -> Result<Vec<String>> {
        tenants::contents(self.conn(), id, limit).await
    }

    async fn delete_tenant(&mut self, id: &Id) -> Result<()> {
        tenants::delete(self.conn(), id).await
    }

    async fn insert_party(&mut self, party: &Party) -> Result<()> {
        parties::insert(self.conn(), party).await
    }

    async fn get_party(&mut self, tenant: &Id, id: &Id) -> Result<Option<Party>> {
        parties::PARTIES
            .get(self.conn(), tenant, id, RowLock::None)
            .await
    }

    async fn get_party_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Party>> {
        parties::PARTIES
            .get(self.conn(), tenant, id, RowLock::ForUpdate)
            .await
    }

    async fn list_parties(
        &mut self,
        tenant: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Party>> {
        parties::PARTIES
            .list(self.conn(), tenant, after, limit)
            .await
    }

    async fn update_party(&mut self, party: &Party) -> Result<()> {
        parties::update(self.conn(), party).await
    }

    async fn delete_party(&mut self, tenant: &Id, id: &Id, now: DateTime<Utc>) -> Result<()> {
        parties::delete(self.conn(), tenant, id, now).await
    }

    async fn party_users(&mut self, tenant: &Id, id: &Id, limit: i64) -> Result<Vec<String>> {
        parties::users(self.conn(), tenant, id, limit).await
    }

    async fn insert_service(&mut self, service: &Service) -> Result<()> {
        services::insert(self.conn(), service).await
    }

    async fn get_service(&mut self, tenant: &Id, id: &Id) -> Result<Option<Service>> {
        services::SERVICES
            .get(self.conn(), tenant, id, RowLock::None)
            .await
    }

    async fn get_service_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Service>> {
        services::SERVICES
            .get(self.conn(), tenant, id, RowLock::ForUpdate)
            .await
    }

    async fn list_services(
        &mut self,
        tenant: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Service>> {
        services::SERVICES
            .list(self.conn(), tenant, after, limit)
            .await
    }

    async fn update_service(&mut self, service: &Service) -> Result<()> {
        services::update(self.conn(), service).await
    }

    async fn delete_service(&mut self, tenant: &Id, id: &Id) -> Result<()> {
        services::delete(self.conn(), tenant, id).await
    }

    async fn service_users(&mut self, tenant: &Id, id: &Id, limit: i64) -> Result<Vec<String>> {
        services::users(self.conn(), tenant, id, limit).await
    }

    async fn insert_agreement(&mut self, agreement: &Agreement) -> Result<()> {
        agreements::insert(self.conn(), agreement).await
    }

    async fn get_agreement(&mut self, tenant: &Id, id: &Id) -> Result<Option<Agreement>> {
        agreements::get(self.conn(), tenant, id, RowLock::None).await
    }

    async fn get_agreement_for_update(
        &mut self,
        tenant: &Id,
        id: &Id,
    ) -> Result<Option<Agreement>> {
        agreements::get(self.conn(), tenant, id, RowLock::ForUpdate).await
    }

    async fn list_agreements(
        &mut self,
        tenant: &Id,
        filter: &AgreementFilter,
        now: DateTime<Utc>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Agreement>> {
        agreements::list(self.conn(), tenant, filter, now, after, limit).await
    }

    async fn update_agreement(&mut self, agreement: &Agreement) -> Result<()> {
        agreements::update(self.conn(), agreement).await
    }

    async fn delete_agreement(
        &mut self,
        tenant: &Id,
        id: &Id,
        now: DateTime<Utc>,
    ) -> Result<Vec<Override>> {
        agreements::delete(self.conn(), tenant, id, now).await
    }

    async fn published_agreements_covering(
        &mut self,
        tenant: &Id,
        kind: AgreementKind,
        services: &[Id],
    ) -> Result<Vec<Agreement>> {
        agreements::published_covering(self.conn(), tenant, kind, services).await
    }

    async fn services_with_terms_for(
        &mut self,
        tenant: &Id,
        parties: &[Id],
        kinds: &[AgreementKind],
    ) -> Result<Vec<Id>> {
        agreements::services_with_terms_for(self.conn(), tenant, parties, kinds).await
    }

    async fn agreement_supporters(
        &mut self,
        tenant: &Id,
        id: &Id,
        limit: i64,
    ) -> Result<Vec<String>> {
        agreements::supporters(self.conn(), tenant, id, limit).await
    }

    async fn insert_revision(&mut self, revision: &Revision) -> Result<()> {
        revisions::insert(self.conn(), revision).await
    }

    async fn get_revision(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
    ) -> Result<Option<Revision>> {
        revisions::get(self.conn(), tenant, agreement, id).await
    }

    async fn list_revisions(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Revision>> {
        revisions::list(self.conn(), tenant, agreement, before, limit).await
    }

    async fn count_revisions(&mut self, tenant: &Id, agreement: &Id) -> Result<i64> {
        revisions::count(self.conn(), tenant, agreement).await
    }

    async fn insert_api_key(&mut self, key: &ApiKey) -> Result<()> {
        api_keys::insert(self.conn(), key).await
    }

    async fn get_api_key_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<ApiKey>> {
        api_keys::API_KEYS
            .get(self.conn(), tenant, id, RowLock::ForUpdate)
            .await
    }

    async fn get_api_key(&mut self, tenant: &Id, id: &Id) -> Result<Option<ApiKey>> {
        api_keys::API_KEYS
            .get(self.conn(), tenant, id, RowLock::None)
            .await
    }

    async fn list_api_keys(
        &mut self,
        tenant: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ApiKey>> {
        api_keys::API_KEYS
            .list(self.conn(), tenant, after, limit)
            .await
    }

    async fn update_api_key(&mut self, key: &ApiKey) -> Result<()> {
        api_keys::update(self.conn(), key).await
    }

    async fn find_api_key(&mut self, key_hash: &str) -> Result<Option<ApiKey>> {
        api_keys::find(self.conn(), key_hash).await
    }

    async fn insert_audit_event(&mut self, event: &AuditEvent) -> Result<()> {
        audit::insert(self.conn(), event).await
    }

    async fn list_audit_events(
        &mut self,
        tenant: &Id,
        tenant_uid: Option<&str>,
        filter: &AuditFilter,
        before: Option<&AuditCursor>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        audit::list(self.conn(), tenant, tenant_uid, filter, before, limit).await
    }

    async fn insert_override(&mut self, o: &Override) -> Result<()> {
        overrides::insert(self.conn(), o).await
    }

    async fn get_override(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
    ) -> Result<Option<Override>> {
        overrides::get(self.conn(), tenant, agreement, id, RowLock::None).await
    }

    async fn get_override_for_update(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
    ) -> Result<Option<Override>> {
        overrides::get(self.conn(), tenant, agreement, id, RowLock::ForUpdate).await
    }

    async fn list_overrides(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Override>> {
        overrides::list(self.conn(), tenant, agreement, after, limit).await
    }

    async fn update_override(&mut self, o: &Override) -> Result<()> {
        overrides::update(self.conn(), o).await
    }

    async fn delete_override(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
        now: DateTime<Utc>,
    ) -> Result<()> {
        overrides::delete(self.conn(), tenant, agreement, id, now).await
    }

    async fn entitlement_rows(
        &mut self,
        tenant: &Id,
        consumer: &Id,
        service: &Id,
        known_at: DateTime<Utc>,
    ) -> Result<EntitlementRows> {
        entitlements::rows(self.conn(), tenant, consumer, service, known_at).await
    }

    async fn entitlement_rows_for(
        &mut self,
        tenant: &Id,
        pairs: &[(Id, Id)],
        known_at: DateTime<Utc>,
    ) -> Result<Vec<EntitlementRows>> {
        entitlements::rows_for(self.conn(), tenant, pairs, known_at).await
    }

    async fn party_ancestry(
        &mut self,
        tenant: &Id,
        party: &Id,
        known_at: DateTime<Utc>,
    ) -> Result<Vec<Id>> {
        parties::ancestry(self.conn(), tenant, party, known_at).await
    }

    async fn entitlement_revisions(&mut self, tenant: &Id, service: &Id) -> Result<Vec<Revision>> {
        entitlements::revisions(self.conn(), tenant, service).await
    }

    async fn entitlement_overrides(
        &mut self,
        tenant: &Id,
        agreements: &[Id],
        known_at: DateTime<Utc>,
    ) -> Result<Vec<Override>> {
        overrides::as_of(self.conn(), tenant, agreements, known_at).await
    }

    async fn overrides_recorded_after(
        &mut self,
        tenant: &Id,
        agreements: &[Id],
        known_at: DateTime<Utc>,
    ) -> Result<Vec<Override>> {
        overrides::first_recorded_after(self.conn(), tenant, agreements, known_at).await
    }

    async fn measurement_catalog(
        &mut self,
        tenant: &Id,
        services: &[&str],
        parties: &[&str],
    ) -> Result<Catalog> {
        measurements::catalog(self.conn(), tenant, services, parties).await
    }

    async fn record_measurements(
        &mut self,
        tenant: &Id,
        candidates: &[(&Measurement, &str)],
        sums: &BTreeMap<RollupKey<'_>, (i64, i64)>,
        markers: &BTreeSet<Marker>,
        now: DateTime<Utc>,
    ) -> Result<Recorded> {
        measurements::record(self.conn(), tenant, candidates, sums, markers, now).await
    }

    async fn insert_measurement_keys(
        &mut self,
        tenant: &Id,
        keys: &[MeasurementKey<'_>],
    ) -> Result<Vec<String>> {
        measurements::insert_keys(self.conn(), tenant, keys).await
    }

    async fn measurement_digests(
        &mut self,
        tenant: &Id,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>> {
        measurements::digests(self.conn(), tenant, ids).await
    }

    async fn insert_measurements(
        &mut self,
        tenant: &Id,
        measurements: &[Measurement],
    ) -> Result<()> {
        measurements::insert(self.conn(), tenant, measurements).await
    }

    async fn add_count_rollups(
        &mut self,
        tenant: &Id,
        sums: &BTreeMap<RollupKey<'_>, (i64, i64)>,
    ) -> Result<()> {
        measurements::add_rollups(self.conn(), tenant, sums).await
    }

    async fn count_buckets(
        &mut self,
        tenant: &Id,
        service: &Id,
        view: &View,
        indicator: &str,
        ranges: &[(Level, Range<DateTime<Utc>>)],
    ) -> Result<Vec<CountBucket>> {
        measurements::count_buckets(self.conn(), tenant, service, view, indicator, ranges).await
    }

    async fn services_with_tagged_data(
        &mut self,
        tenant: &Id,
        consumer: &Id,
        level: Level,
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<Id>> {
        measurements::services_with_tagged_data(self.conn(), tenant, consumer, level, span).await
    }

    async fn samples(
        &mut self,
        tenant: &Id,
        service: &Id,
        view: &View,
        indicator: &str,
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<SampleAt>> {
        measurements::samples(self.conn(), tenant, service, view, indicator, span).await
    }

    async fn downtime(
        &mut self,
        tenant: &Id,
        service: &Id,
        view: &View,
        indicator: &str,
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<Range<DateTime<Utc>>>> {
        measurements::downtime(self.conn(), tenant, service, view, indicator, span).await
    }

    async fn delete_expired_measurements(
        &mut self,
        tenant: &Id,
        cutoffs: &Cutoffs,
        limit: i64,
    ) -> Result<u64> {
        measurements::delete_expired(self.conn(), tenant, cutoffs, limit).await
    }

    async fn mark_compliance_dirty(
        &mut self,
        tenant: &Id,
        markers: &BTreeSet<Marker>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        breaches::mark(self.conn(), tenant, markers, now).await
    }

    async fn tenants_with_due_markers(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Id>> {
        breaches::tenants_due(self.conn(), now, limit).await
    }

    async fn due_markers(
        &mut self,
        tenant: &Id,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueMarker>> {
        breaches::due(self.conn(), tenant, now, limit).await
    }

    async fn settle_marker(
        &mut self,
        tenant: &Id,
        due: &DueMarker,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        breaches::settle(self.conn(), tenant, due, next).await
    }

    async fn tagged_consumers(
        &mut self,
        tenant: &Id,
        service: &Id,
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<Id>> {
        breaches::tagged_consumers(self.conn(), tenant, service, span).await
    }

    async fn period_generations(
        &mut self,
        tenant: &Id,
        consumer: Option<&Id>,
        services: &[Id],
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<(BreachKey, i64)>> {
        breaches::generations(self.conn(), tenant, consumer, services, span).await
    }

    async fn claim_period_evaluation(
        &mut self,
        tenant: &Id,
        evaluation: &PeriodEvaluation<'_>,
        seen: i64,
    ) -> Result<bool> {
        breaches::claim_evaluation(self.conn(), tenant, evaluation, seen).await
    }

    async fn insert_breach(&mut self, breach: &Breach) -> Result<bool> {
        breaches::insert(self.conn(), breach).await
    }

    async fn update_breach(&mut self, breach: &Breach) -> Result<()> {
        breaches::update(self.conn(), breach).await
    }

    async fn get_breach(&mut self, tenant: &Id, id: &Id) -> Result<Option<Breach>> {
        breaches::get(self.conn(), tenant, id, RowLock::None).await
    }

    async fn count_breaches(&mut self, tenant: &Id, state: BreachState) -> Result<i64> {
        breaches::count(self.conn(), tenant, state).await
    }

    async fn get_breach_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Breach>> {
        breaches::get(self.conn(), tenant, id, RowLock::ForUpdate).await
    }

    async fn breach_revisions(&mut self, tenant: &Id, id: &Id) -> Result<Vec<Breach>> {
        breaches::revisions(self.conn(), tenant, id).await
    }

    async fn list_breaches(
        &mut self,
        tenant: &Id,
        filter: &BreachFilter,
        after: Option<&BreachCursor>,
        limit: i64,
    ) -> Result<Vec<Breach>> {
        breaches::list(self.conn(), tenant, filter, after, limit).await
    }

    async fn lock_alert_state(
        &mut self,
        tenant: &Id,
        key: &AlertKey,
        origin: DateTime<Utc>,
    ) -> Result<AlertState> {
        breaches::lock_alert(self.conn(), tenant, key, origin).await
    }

    async fn set_alert_state(
        &mut self,
        tenant: &Id,
        key: &AlertKey,
        state: &AlertState,
    ) -> Result<()> {
        breaches::set_alert(self.conn(), tenant, key, state).await
    }

    async fn delete_expired_breach_state(
        &mut self,
        tenant: &Id,
        before: DateTime<Utc>,
    ) -> Result<u64> {
        breaches::delete_expired(self.conn(), tenant, before).await
    }
}
