//! The SQL of the store, written once and compiled for each backend by
//! `impl_tx!`. Backends differ only in what the macro's arguments carry: the
//! timestamp encoding (`db_time`), the row-locking suffix and the tenant lock.
//! Placeholders are `$N`, which both PostgreSQL and SQLite accept.

/// `chain (id, parent, depth)`: party `$2` of tenant `$1` and its ancestors
/// up to depth `$4`, as recorded at `$3` (party_history), for the queries of
/// entitlement resolution to start with.
macro_rules! ancestry_cte {
    () => {
        "WITH RECURSIVE chain (id, parent, depth) AS ( \
           SELECT party_id, parent, 0 FROM party_history \
             WHERE tenant = $1 AND party_id = $2 AND recorded_from <= $3 \
             AND (recorded_until IS NULL OR recorded_until > $3) \
           UNION ALL \
           SELECT h.party_id, h.parent, c.depth + 1 FROM party_history h \
             JOIN chain c ON h.party_id = c.parent \
             WHERE h.tenant = $1 AND h.recorded_from <= $3 \
             AND (h.recorded_until IS NULL OR h.recorded_until > $3) AND c.depth < $4 \
         ) "
    };
}

macro_rules! impl_tx {
    ($tx:ident, $db:ty, $for_update:literal) => {
        impl $tx {
            fn conn(&mut self) -> &mut <$db as sqlx::Database>::Connection {
                &mut *self.tx
            }

            /// Records the override's current version in its history, closing
            /// the one before.
            async fn record_override(&mut self, o: &Override) -> Result<()> {
                let at = o.meta.update_time;
                self.close_override(&o.tenant, &o.agreement, &o.id, at).await?;
                sqlx::query(
                    "INSERT INTO override_history \
                     (tenant, agreement_id, override_id, consumer, recorded_from, body) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(o.tenant.as_str())
                .bind(o.agreement.as_str())
                .bind(o.id.as_str())
                .bind(o.consumer.as_str())
                .bind(db_time(at))
                .bind(Json(o))
                .execute(self.conn())
                .await
                .map_err(internal("record override history"))?;
                Ok(())
            }

            async fn close_override(
                &mut self,
                tenant: &Id,
                agreement: &Id,
                id: &Id,
                at: DateTime<Utc>,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE override_history SET recorded_until = $4 WHERE tenant = $1 \
                     AND agreement_id = $2 AND override_id = $3 AND recorded_until IS NULL",
                )
                .bind(tenant.as_str())
                .bind(agreement.as_str())
                .bind(id.as_str())
                .bind(db_time(at))
                .execute(self.conn())
                .await
                .map_err(internal("close override history"))?;
                Ok(())
            }

            /// Appends `ids` as a comma-separated list of bound parameters.
            fn push_ids(q: &mut sqlx::QueryBuilder<$db>, ids: &[Id]) {
                let mut list = q.separated(", ");
                for id in ids {
                    list.push_bind(id.as_str());
                }
            }

            /// The locking variant of a read, for the rows an operation changes.
            fn locking(for_update: bool, sql: &'static str, locked: &'static str) -> &'static str {
                if for_update { locked } else { sql }
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Tx for $tx {
            async fn commit(self: Box<Self>) -> Result<()> {
                self.tx.commit().await.map_err(internal("commit"))
            }

            async fn lock_tenant(&mut self, tenant: &Id) -> Result<()> {
                lock_tenant(&mut *self.tx, tenant).await
            }

            async fn notify(&mut self, change: &$crate::domain::changes::Change) -> Result<()> {
                notify(&mut *self.tx, change).await
            }

            async fn claim_request(
                &mut self,
                tenant: &str,
                request_id: &str,
                fingerprint: &str,
                now: DateTime<Utc>,
                expire_time: DateTime<Utc>,
            ) -> Result<Option<StoredRequest>> {
                // An expired row is taken over in place, whether or not a
                // sweeper has reached it yet.
                let claimed = sqlx::query(
                    "INSERT INTO request_ids \
                     (tenant, request_id, fingerprint, create_time, expire_time) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant, request_id) DO UPDATE SET \
                       fingerprint = excluded.fingerprint, response = NULL, \
                       create_time = excluded.create_time, expire_time = excluded.expire_time \
                     WHERE request_ids.expire_time <= excluded.create_time",
                )
                .bind(tenant)
                .bind(request_id)
                .bind(fingerprint)
                .bind(db_time(now))
                .bind(db_time(expire_time))
                .execute(self.conn())
                .await
                .map_err(internal("claim request_id"))?
                .rows_affected();
                if claimed == 1 {
                    return Ok(None);
                }
                let row: Option<(String, Option<Json<serde_json::Value>>)> = sqlx::query_as(
                    "SELECT fingerprint, response FROM request_ids \
                     WHERE tenant = $1 AND request_id = $2",
                )
                .bind(tenant)
                .bind(request_id)
                .fetch_optional(self.conn())
                .await
                .map_err(internal("read request_id"))?;
                let (fingerprint, response) = row.ok_or_else(|| {
                    Error::internal("request_id vanished between insert and read")
                })?;
                Ok(Some(StoredRequest {
                    fingerprint,
                    response: response.map(|r| r.0),
                }))
            }

            async fn complete_request(
                &mut self,
                tenant: &str,
                request_id: &str,
                response: &serde_json::Value,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE request_ids SET response = $3 WHERE tenant = $1 AND request_id = $2",
                )
                .bind(tenant)
                .bind(request_id)
                .bind(Json(response))
                .execute(self.conn())
                .await
                .map_err(internal("complete request_id"))?;
                Ok(())
            }

            async fn delete_expired_requests(
                &mut self,
                now: DateTime<Utc>,
                limit: i64,
            ) -> Result<u64> {
                // The outer condition is checked again on a row a concurrent
                // claim has just taken over (PostgreSQL re-reads it after
                // waiting for the claim), so a live id is never deleted.
                let deleted = sqlx::query(
                    "DELETE FROM request_ids WHERE expire_time <= $1 \
                     AND (tenant, request_id) IN ( \
                       SELECT tenant, request_id FROM request_ids WHERE expire_time <= $1 \
                       ORDER BY expire_time LIMIT $2)",
                )
                .bind(db_time(now))
                .bind(limit)
                .execute(self.conn())
                .await
                .map_err(internal("delete expired request_ids"))?
                .rows_affected();
                Ok(deleted)
            }

            // --- tenants -------------------------------------------------

            async fn insert_tenant(&mut self, t: &Tenant) -> Result<()> {
                sqlx::query("INSERT INTO tenants (id, uid, body) VALUES ($1, $2, $3)")
                    .bind(t.id.as_str())
                    .bind(t.uid.as_str())
                    .bind(Json(t))
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &format!("tenants/{}", t.id)))?;
                Ok(())
            }

            async fn get_tenant(&mut self, id: &Id) -> Result<Option<Tenant>> {
                self.fetch_tenant(id, false).await
            }

            async fn get_tenant_for_update(&mut self, id: &Id) -> Result<Option<Tenant>> {
                self.fetch_tenant(id, true).await
            }

            async fn list_tenants(&mut self, after: Option<&str>, limit: i64) -> Result<Vec<Tenant>> {
                self.list_bodies(
                    "SELECT body FROM tenants WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
                    &[],
                    after,
                    limit,
                    "list tenants",
                )
                .await
            }

            async fn update_tenant(&mut self, t: &Tenant) -> Result<()> {
                sqlx::query("UPDATE tenants SET body = $2 WHERE id = $1")
                    .bind(t.id.as_str())
                    .bind(Json(t))
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &format!("tenants/{}", t.id)))?;
                Ok(())
            }

            async fn tenant_contents(&mut self, id: &Id, limit: i64) -> Result<Vec<String>> {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM ( \
                       SELECT 'tenants/' || tenant || '/parties/' || id AS name FROM parties WHERE tenant = $1 \
                       UNION ALL SELECT 'tenants/' || tenant || '/services/' || id FROM services WHERE tenant = $1 \
                       UNION ALL SELECT 'tenants/' || tenant || '/agreements/' || id FROM agreements WHERE tenant = $1 \
                     ) AS contents ORDER BY name LIMIT $2",
                )
                .bind(id.as_str())
                .bind(limit)
                .fetch_all(self.conn())
                .await
                .map_err(internal("tenant contents"))?;
                Ok(rows)
            }

            async fn delete_tenant(&mut self, id: &Id) -> Result<()> {
                // Children before parents, so no foreign key is ever dangling.
                for sql in [
                    "DELETE FROM override_history WHERE tenant = $1",
                    "DELETE FROM party_history WHERE tenant = $1",
                    "DELETE FROM overrides WHERE tenant = $1",
                    "DELETE FROM revision_services WHERE tenant = $1",
                    "DELETE FROM agreement_revisions WHERE tenant = $1",
                    "DELETE FROM agreement_supports WHERE tenant = $1",
                    "DELETE FROM agreement_labels WHERE tenant = $1",
                    "DELETE FROM agreement_services WHERE tenant = $1",
                    "DELETE FROM agreements WHERE tenant = $1",
                    "DELETE FROM services WHERE tenant = $1",
                    "DELETE FROM parties WHERE tenant = $1",
                    "DELETE FROM request_ids WHERE tenant = $1",
                    "DELETE FROM api_keys WHERE tenant = $1",
                    "DELETE FROM tenants WHERE id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(id.as_str())
                        .execute(self.conn())
                        .await
                        .map_err(|e| translate(e, &format!("tenants/{id}")))?;
                }
                Ok(())
            }

            // --- parties -------------------------------------------------

            async fn insert_party(&mut self, p: &Party) -> Result<()> {
                sqlx::query(
                    "INSERT INTO parties (tenant, id, kind, parent, body) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(p.tenant.as_str())
                .bind(p.id.as_str())
                .bind(p.kind.as_str())
                .bind(p.parent.as_ref().map(Id::as_str))
                .bind(Json(p))
                .execute(self.conn())
                .await
                .map_err(|e| translate(e, &p.name()))?;
                sqlx::query(
                    "INSERT INTO party_history (tenant, party_id, parent, recorded_from) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(p.tenant.as_str())
                .bind(p.id.as_str())
                .bind(p.parent.as_ref().map(Id::as_str))
                .bind(db_time(p.meta.create_time))
                .execute(self.conn())
                .await
                .map_err(internal("record party history"))?;
                Ok(())
            }

            async fn get_party(&mut self, tenant: &Id, id: &Id) -> Result<Option<Party>> {
                self.fetch_party(tenant, id, false).await
            }

            async fn get_party_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Party>> {
                self.fetch_party(tenant, id, true).await
            }

            async fn list_parties(
                &mut self,
                tenant: &Id,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<Party>> {
                self.list_bodies(
                    "SELECT body FROM parties WHERE tenant = $1 AND ($2 IS NULL OR id > $2) \
                     ORDER BY id LIMIT $3",
                    &[tenant.as_str()],
                    after,
                    limit,
                    "list parties",
                )
                .await
            }

            async fn update_party(&mut self, p: &Party) -> Result<()> {
                sqlx::query(
                    "UPDATE parties SET kind = $3, parent = $4, body = $5 WHERE tenant = $1 AND id = $2",
                )
                .bind(p.tenant.as_str())
                .bind(p.id.as_str())
                .bind(p.kind.as_str())
                .bind(p.parent.as_ref().map(Id::as_str))
                .bind(Json(p))
                .execute(self.conn())
                .await
                .map_err(|e| translate(e, &p.name()))?;
                // A new version of the party's history only when its parent moves.
                let closed = sqlx::query(
                    "UPDATE party_history SET recorded_until = $3 \
                     WHERE tenant = $1 AND party_id = $2 AND recorded_until IS NULL \
                     AND parent IS DISTINCT FROM $4",
                )
                .bind(p.tenant.as_str())
                .bind(p.id.as_str())
                .bind(db_time(p.meta.update_time))
                .bind(p.parent.as_ref().map(Id::as_str))
                .execute(self.conn())
                .await
                .map_err(internal("close party history"))?
                .rows_affected();
                if closed > 0 {
                    sqlx::query(
                        "INSERT INTO party_history (tenant, party_id, parent, recorded_from) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(p.tenant.as_str())
                    .bind(p.id.as_str())
                    .bind(p.parent.as_ref().map(Id::as_str))
                    .bind(db_time(p.meta.update_time))
                    .execute(self.conn())
                    .await
                    .map_err(internal("record party history"))?;
                }
                Ok(())
            }

            async fn delete_party(&mut self, tenant: &Id, id: &Id, now: DateTime<Utc>) -> Result<()> {
                sqlx::query("DELETE FROM parties WHERE tenant = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &party_name(tenant, id)))?;
                sqlx::query(
                    "UPDATE party_history SET recorded_until = $3 \
                     WHERE tenant = $1 AND party_id = $2 AND recorded_until IS NULL",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(db_time(now))
                .execute(self.conn())
                .await
                .map_err(internal("close party history"))?;
                Ok(())
            }

            async fn party_users(&mut self, tenant: &Id, id: &Id, limit: i64) -> Result<Vec<String>> {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM ( \
                       SELECT 'tenants/' || tenant || '/parties/' || id AS name FROM parties \
                         WHERE tenant = $1 AND parent = $2 \
                       UNION ALL SELECT 'tenants/' || tenant || '/services/' || id FROM services \
                         WHERE tenant = $1 AND owner = $2 \
                       UNION ALL SELECT 'tenants/' || tenant || '/agreements/' || id FROM agreements \
                         WHERE tenant = $1 AND (provider = $2 OR consumer = $2) \
                       UNION ALL SELECT 'tenants/' || tenant || '/agreements/' || agreement_id || '/overrides/' || id \
                         FROM overrides WHERE tenant = $1 AND consumer = $2 \
                     ) AS users ORDER BY name LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(limit)
                .fetch_all(self.conn())
                .await
                .map_err(internal("party users"))?;
                Ok(rows)
            }

            // --- services ------------------------------------------------

            async fn insert_service(&mut self, s: &Service) -> Result<()> {
                sqlx::query("INSERT INTO services (tenant, id, owner, body) VALUES ($1, $2, $3, $4)")
                    .bind(s.tenant.as_str())
                    .bind(s.id.as_str())
                    .bind(s.owner.as_str())
                    .bind(Json(s))
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &s.name()))?;
                Ok(())
            }

            async fn get_service(&mut self, tenant: &Id, id: &Id) -> Result<Option<Service>> {
                self.fetch_service(tenant, id, false).await
            }

            async fn get_service_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Service>> {
                self.fetch_service(tenant, id, true).await
            }

            async fn list_services(
                &mut self,
                tenant: &Id,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<Service>> {
                self.list_bodies(
                    "SELECT body FROM services WHERE tenant = $1 AND ($2 IS NULL OR id > $2) \
                     ORDER BY id LIMIT $3",
                    &[tenant.as_str()],
                    after,
                    limit,
                    "list services",
                )
                .await
            }

            async fn update_service(&mut self, s: &Service) -> Result<()> {
                sqlx::query("UPDATE services SET owner = $3, body = $4 WHERE tenant = $1 AND id = $2")
                    .bind(s.tenant.as_str())
                    .bind(s.id.as_str())
                    .bind(s.owner.as_str())
                    .bind(Json(s))
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &s.name()))?;
                Ok(())
            }

            async fn delete_service(&mut self, tenant: &Id, id: &Id) -> Result<()> {
                sqlx::query("DELETE FROM services WHERE tenant = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &service_name(tenant, id)))?;
                Ok(())
            }

            async fn service_users(&mut self, tenant: &Id, id: &Id, limit: i64) -> Result<Vec<String>> {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT 'tenants/' || tenant || '/agreements/' || agreement_id FROM agreement_services \
                     WHERE tenant = $1 AND service_id = $2 ORDER BY agreement_id LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(limit)
                .fetch_all(self.conn())
                .await
                .map_err(internal("service users"))?;
                Ok(rows)
            }

            // --- agreements ----------------------------------------------

            async fn insert_agreement(&mut self, a: &Agreement) -> Result<()> {
                sqlx::query(
                    "INSERT INTO agreements \
                     (tenant, id, kind, state, provider, consumer, effective_from, effective_until, body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(a.tenant.as_str())
                .bind(a.id.as_str())
                .bind(a.kind.as_str())
                .bind(a.state.as_str())
                .bind(a.provider.as_str())
                .bind(a.consumer.as_ref().map(Id::as_str))
                .bind(db_time(a.effective_from))
                .bind(a.effective_end().map(db_time))
                .bind(Json(a))
                .execute(self.conn())
                .await
                .map_err(|e| translate(e, &a.name()))?;
                self.write_agreement_links(a).await
            }

            async fn get_agreement(&mut self, tenant: &Id, id: &Id) -> Result<Option<Agreement>> {
                self.fetch_agreement(tenant, id, false).await
            }

            async fn get_agreement_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Agreement>> {
                self.fetch_agreement(tenant, id, true).await
            }

            async fn list_agreements(
                &mut self,
                tenant: &Id,
                filter: &AgreementFilter,
                now: DateTime<Utc>,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<Agreement>> {
                let mut q = sqlx::QueryBuilder::<$db>::new("SELECT a.body FROM agreements a WHERE a.tenant = ");
                q.push_bind(tenant.as_str());
                if let Some(after) = after {
                    q.push(" AND a.id > ").push_bind(after);
                }
                for term in &filter.terms {
                    match term {
                        FilterTerm::Kind(kind) => {
                            q.push(" AND a.kind = ").push_bind(kind.as_str());
                        }
                        FilterTerm::State(AgreementState::Active) => {
                            q.push(" AND a.state = 'ACTIVE' AND (a.effective_until IS NULL OR a.effective_until > ")
                                .push_bind(db_time(now))
                                .push(")");
                        }
                        FilterTerm::State(AgreementState::Expired) => {
                            q.push(" AND a.state = 'ACTIVE' AND a.effective_until <= ")
                                .push_bind(db_time(now));
                        }
                        FilterTerm::State(state) => {
                            q.push(" AND a.state = ").push_bind(state.as_str());
                        }
                        FilterTerm::Consumer(id) => {
                            q.push(" AND a.consumer = ").push_bind(id.as_str());
                        }
                        FilterTerm::Provider(id) => {
                            q.push(" AND a.provider = ").push_bind(id.as_str());
                        }
                        FilterTerm::Service(id) => {
                            q.push(
                                " AND EXISTS (SELECT 1 FROM agreement_services s \
                                 WHERE s.tenant = a.tenant AND s.agreement_id = a.id AND s.service_id = ",
                            )
                            .push_bind(id.as_str())
                            .push(")");
                        }
                        FilterTerm::Label(key, value) => {
                            q.push(
                                " AND EXISTS (SELECT 1 FROM agreement_labels l \
                                 WHERE l.tenant = a.tenant AND l.agreement_id = a.id AND l.key = ",
                            )
                            .push_bind(key.as_str())
                            .push(" AND l.value = ")
                            .push_bind(value.as_str())
                            .push(")");
                        }
                    }
                }
                q.push(" ORDER BY a.id LIMIT ").push_bind(limit);
                let rows: Vec<Json<Agreement>> = q
                    .build_query_scalar()
                    .fetch_all(self.conn())
                    .await
                    .map_err(internal("list agreements"))?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn update_agreement(&mut self, a: &Agreement) -> Result<()> {
                sqlx::query(
                    "UPDATE agreements SET kind = $3, state = $4, provider = $5, consumer = $6, \
                     effective_from = $7, effective_until = $8, body = $9 WHERE tenant = $1 AND id = $2",
                )
                .bind(a.tenant.as_str())
                .bind(a.id.as_str())
                .bind(a.kind.as_str())
                .bind(a.state.as_str())
                .bind(a.provider.as_str())
                .bind(a.consumer.as_ref().map(Id::as_str))
                .bind(db_time(a.effective_from))
                .bind(a.effective_end().map(db_time))
                .bind(Json(a))
                .execute(self.conn())
                .await
                .map_err(|e| translate(e, &a.name()))?;
                for sql in [
                    "DELETE FROM agreement_services WHERE tenant = $1 AND agreement_id = $2",
                    "DELETE FROM agreement_labels WHERE tenant = $1 AND agreement_id = $2",
                    "DELETE FROM agreement_supports WHERE tenant = $1 AND agreement_id = $2",
                ] {
                    sqlx::query(sql)
                        .bind(a.tenant.as_str())
                        .bind(a.id.as_str())
                        .execute(self.conn())
                        .await
                        .map_err(|e| translate(e, &a.name()))?;
                }
                self.write_agreement_links(a).await
            }

            async fn delete_agreement(
                &mut self,
                tenant: &Id,
                id: &Id,
                now: DateTime<Utc>,
            ) -> Result<Vec<Override>> {
                let removed: Vec<Json<Override>> = sqlx::query_scalar(
                    "DELETE FROM overrides WHERE tenant = $1 AND agreement_id = $2 RETURNING body",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .fetch_all(self.conn())
                .await
                .map_err(|e| translate(e, &agreement_name(tenant, id)))?;
                // Their history ends here too, or a later agreement with the
                // same id would resolve with them (override_history is keyed
                // by agreement id).
                sqlx::query(
                    "UPDATE override_history SET recorded_until = $3 \
                     WHERE tenant = $1 AND agreement_id = $2 AND recorded_until IS NULL",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(db_time(now))
                .execute(self.conn())
                .await
                .map_err(internal("close override history"))?;
                for sql in [
                    "DELETE FROM agreement_services WHERE tenant = $1 AND agreement_id = $2",
                    "DELETE FROM agreement_labels WHERE tenant = $1 AND agreement_id = $2",
                    "DELETE FROM agreement_supports WHERE tenant = $1 AND agreement_id = $2",
                    "DELETE FROM agreements WHERE tenant = $1 AND id = $2",
                ] {
                    sqlx::query(sql)
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .execute(self.conn())
                        .await
                        .map_err(|e| translate(e, &agreement_name(tenant, id)))?;
                }
                let mut removed: Vec<Override> = removed.into_iter().map(|j| j.0).collect();
                removed.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(removed)
            }

            async fn published_agreements_covering(
                &mut self,
                tenant: &Id,
                kind: AgreementKind,
                services: &[Id],
            ) -> Result<Vec<Agreement>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT a.body FROM agreements a WHERE a.state <> 'DRAFT' AND a.tenant = ",
                );
                q.push_bind(tenant.as_str())
                    .push(" AND a.kind = ")
                    .push_bind(kind.as_str())
                    .push(
                        " AND EXISTS (SELECT 1 FROM agreement_services s \
                         WHERE s.tenant = a.tenant AND s.agreement_id = a.id AND s.service_id IN (",
                    );
                Self::push_ids(&mut q, services);
                q.push(")) ORDER BY a.id");
                let rows: Vec<Json<Agreement>> = q
                    .build_query_scalar()
                    .fetch_all(self.conn())
                    .await
                    .map_err(internal("published agreements covering services"))?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn agreement_supporters(
                &mut self,
                tenant: &Id,
                id: &Id,
                limit: i64,
            ) -> Result<Vec<String>> {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT 'tenants/' || tenant || '/agreements/' || agreement_id FROM agreement_supports \
                     WHERE tenant = $1 AND supported_id = $2 ORDER BY agreement_id LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(limit)
                .fetch_all(self.conn())
                .await
                .map_err(internal("agreement supporters"))?;
                Ok(rows)
            }

            // --- revisions -----------------------------------------------

            async fn insert_revision(&mut self, r: &Revision) -> Result<()> {
                sqlx::query(
                    "INSERT INTO agreement_revisions (tenant, agreement_id, id, seq, create_time, body) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(r.tenant.as_str())
                .bind(r.agreement.as_str())
                .bind(r.id.as_str())
                .bind(r.seq)
                .bind(db_time(r.create_time))
                .bind(Json(r))
                .execute(self.conn())
                .await
                .map_err(|e| translate(e, &r.name()))?;
                for service in &r.snapshot.services {
                    sqlx::query(
                        "INSERT INTO revision_services \
                         (tenant, agreement_id, seq, service_id, kind, consumer) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(r.tenant.as_str())
                    .bind(r.agreement.as_str())
                    .bind(r.seq)
                    .bind(service.as_str())
                    .bind(r.snapshot.kind.as_str())
                    .bind(r.snapshot.consumer.as_ref().map(Id::as_str))
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &r.name()))?;
                }
                Ok(())
            }

            async fn get_revision(
                &mut self,
                tenant: &Id,
                agreement: &Id,
                id: &Id,
            ) -> Result<Option<Revision>> {
                let row: Option<Json<Revision>> = sqlx::query_scalar(
                    "SELECT body FROM agreement_revisions WHERE tenant = $1 AND agreement_id = $2 AND id = $3",
                )
                .bind(tenant.as_str())
                .bind(agreement.as_str())
                .bind(id.as_str())
                .fetch_optional(self.conn())
                .await
                .map_err(internal("get revision"))?;
                Ok(row.map(|j| j.0))
            }

            async fn list_revisions(
                &mut self,
                tenant: &Id,
                agreement: &Id,
                before: Option<i64>,
                limit: i64,
            ) -> Result<Vec<Revision>> {
                let rows: Vec<Json<Revision>> = sqlx::query_scalar(
                    "SELECT body FROM agreement_revisions WHERE tenant = $1 AND agreement_id = $2 \
                     AND ($3 IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4",
                )
                .bind(tenant.as_str())
                .bind(agreement.as_str())
                .bind(before)
                .bind(limit)
                .fetch_all(self.conn())
                .await
                .map_err(internal("list revisions"))?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn count_revisions(&mut self, tenant: &Id, agreement: &Id) -> Result<i64> {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM agreement_revisions WHERE tenant = $1 AND agreement_id = $2",
                )
                .bind(tenant.as_str())
                .bind(agreement.as_str())
                .fetch_one(self.conn())
                .await
                .map_err(internal("count revisions"))
            }

            // --- audit events --------------------------------------------

            async fn insert_audit_event(&mut self, e: &AuditEvent) -> Result<()> {
                sqlx::query(
                    "INSERT INTO audit_events \
                     (tenant, id, tenant_uid, event_time, actor, resource, body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(e.tenant.as_str())
                .bind(e.id.as_str())
                .bind(e.tenant_uid.as_str())
                .bind(db_time(e.event_time))
                .bind(e.actor.as_str())
                .bind(e.resource.as_str())
                .bind(Json(e))
                .execute(self.conn())
                .await
                .map_err(|err| translate(err, &e.name()))?;
                Ok(())
            }

            async fn list_audit_events(
                &mut self,
                tenant: &Id,
                tenant_uid: Option<&str>,
                filter: &AuditFilter,
                before: Option<&AuditCursor>,
                limit: i64,
            ) -> Result<Vec<AuditEvent>> {
                let rows: Vec<Json<AuditEvent>> = sqlx::query_scalar(
                    "SELECT body FROM audit_events WHERE tenant = $1 \
                     AND ($9 IS NULL OR tenant_uid = $9) \
                     AND ($2 IS NULL OR resource = $2) \
                     AND ($3 IS NULL OR actor = $3) \
                     AND ($4 IS NULL OR event_time >= $4) \
                     AND ($5 IS NULL OR event_time < $5) \
                     AND ($6 IS NULL OR event_time < $6 OR (event_time = $6 AND id < $7)) \
                     ORDER BY event_time DESC, id DESC LIMIT $8",
                )
                .bind(tenant.as_str())
                .bind(filter.resource.as_deref())
                .bind(filter.actor.as_deref())
                .bind(filter.start_time.map(db_time))
                .bind(filter.end_time.map(db_time))
                .bind(before.map(|c| db_time(c.time)))
                .bind(before.map(|c| c.id.as_str()))
                .bind(limit)
                .bind(tenant_uid)
                .fetch_all(self.conn())
                .await
                .map_err(internal("list audit events"))?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            // --- API keys ------------------------------------------------

            async fn insert_api_key(&mut self, k: &ApiKey) -> Result<()> {
                sqlx::query("INSERT INTO api_keys (tenant, id, key_hash, body) VALUES ($1, $2, $3, $4)")
                    .bind(k.tenant.as_str())
                    .bind(k.id.as_str())
                    .bind(k.key_hash.as_str())
                    .bind(Json(k))
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &k.name()))?;
                Ok(())
            }

            async fn get_api_key(&mut self, tenant: &Id, id: &Id) -> Result<Option<ApiKey>> {
                self.fetch_api_key(tenant, id, false).await
            }

            async fn get_api_key_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<ApiKey>> {
                self.fetch_api_key(tenant, id, true).await
            }

            async fn list_api_keys(
                &mut self,
                tenant: &Id,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<ApiKey>> {
                self.list_bodies(
                    "SELECT body FROM api_keys WHERE tenant = $1 AND ($2 IS NULL OR id > $2) \
                     ORDER BY id LIMIT $3",
                    &[tenant.as_str()],
                    after,
                    limit,
                    "list api keys",
                )
                .await
            }

            async fn update_api_key(&mut self, k: &ApiKey) -> Result<()> {
                sqlx::query("UPDATE api_keys SET body = $3 WHERE tenant = $1 AND id = $2")
                    .bind(k.tenant.as_str())
                    .bind(k.id.as_str())
                    .bind(Json(k))
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &k.name()))?;
                Ok(())
            }

            async fn find_api_key(&mut self, key_hash: &str) -> Result<Option<ApiKey>> {
                let row: Option<Json<ApiKey>> =
                    sqlx::query_scalar("SELECT body FROM api_keys WHERE key_hash = $1")
                        .bind(key_hash)
                        .fetch_optional(self.conn())
                        .await
                        .map_err(internal("find api key"))?;
                Ok(row.map(|j| j.0))
            }

            // --- overrides -----------------------------------------------

            async fn insert_override(&mut self, o: &Override) -> Result<()> {
                sqlx::query(
                    "INSERT INTO overrides (tenant, agreement_id, id, consumer, body) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(o.tenant.as_str())
                .bind(o.agreement.as_str())
                .bind(o.id.as_str())
                .bind(o.consumer.as_str())
                .bind(Json(o))
                .execute(self.conn())
                .await
                .map_err(|e| translate(e, &o.name()))?;
                self.record_override(o).await
            }

            async fn get_override(
                &mut self,
                tenant: &Id,
                agreement: &Id,
                id: &Id,
            ) -> Result<Option<Override>> {
                self.fetch_override(tenant, agreement, id, false).await
            }

            async fn get_override_for_update(&mut self, tenant: &Id, agreement: &Id, id: &Id) -> Result<Option<Override>> {
                self.fetch_override(tenant, agreement, id, true).await
            }

            async fn list_overrides(
                &mut self,
                tenant: &Id,
                agreement: &Id,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<Override>> {
                self.list_bodies(
                    "SELECT body FROM overrides WHERE tenant = $1 AND agreement_id = $2 \
                     AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4",
                    &[tenant.as_str(), agreement.as_str()],
                    after,
                    limit,
                    "list overrides",
                )
                .await
            }

            async fn update_override(&mut self, o: &Override) -> Result<()> {
                sqlx::query(
                    "UPDATE overrides SET consumer = $4, body = $5 \
                     WHERE tenant = $1 AND agreement_id = $2 AND id = $3",
                )
                .bind(o.tenant.as_str())
                .bind(o.agreement.as_str())
                .bind(o.id.as_str())
                .bind(o.consumer.as_str())
                .bind(Json(o))
                .execute(self.conn())
                .await
                .map_err(|e| translate(e, &o.name()))?;
                self.record_override(o).await
            }

            async fn delete_override(
                &mut self,
                tenant: &Id,
                agreement: &Id,
                id: &Id,
                now: DateTime<Utc>,
            ) -> Result<()> {
                sqlx::query("DELETE FROM overrides WHERE tenant = $1 AND agreement_id = $2 AND id = $3")
                    .bind(tenant.as_str())
                    .bind(agreement.as_str())
                    .bind(id.as_str())
                    .execute(self.conn())
                    .await
                    .map_err(internal("delete override"))?;
                self.close_override(tenant, agreement, id, now).await
            }

            // --- entitlements --------------------------------------------

            async fn entitlement_rows(
                &mut self,
                tenant: &Id,
                consumer: &Id,
                service: &Id,
                known_at: DateTime<Utc>,
            ) -> Result<EntitlementRows> {
                // One round trip: the ancestry, the service, the revisions of
                // the agreements covering the service for the ancestry, and
                // the overrides of its SERVICE_LEVEL agreements for the
                // ancestry, told apart by `part`.
                #[allow(clippy::type_complexity)]
                let rows: Vec<(i64, i64, Option<String>, Option<Json<serde_json::Value>>)> =
                    sqlx::query_as(concat!(
                        $crate::store::sql::ancestry_cte!(),
                        "SELECT * FROM ( \
                         SELECT CAST(0 AS BIGINT) AS part, CAST(depth AS BIGINT) AS n, \
                                id AS party, NULL AS body FROM chain \
                         UNION ALL \
                         SELECT 1, 0, NULL, body FROM services WHERE tenant = $1 AND id = $5 \
                         UNION ALL \
                         SELECT 2, r.seq, NULL, r.body FROM agreement_revisions r \
                           WHERE r.tenant = $1 AND r.create_time <= $3 \
                           AND r.agreement_id IN (SELECT s.agreement_id FROM revision_services s \
                             WHERE s.tenant = $1 AND s.service_id = $5 \
                             AND s.kind IN ('SERVICE_LEVEL', 'CUSTOMER', 'INTERNAL') \
                             AND (s.consumer IS NULL OR s.consumer IN (SELECT id FROM chain))) \
                         UNION ALL \
                         SELECT 3, 0, NULL, o.body FROM override_history o \
                           WHERE o.tenant = $1 AND o.recorded_from <= $3 \
                           AND (o.recorded_until IS NULL OR o.recorded_until > $3) \
                           AND o.consumer IN (SELECT id FROM chain) \
                           AND o.agreement_id IN (SELECT s.agreement_id FROM revision_services s \
                             WHERE s.tenant = $1 AND s.service_id = $5 AND s.kind = 'SERVICE_LEVEL') \
                         ) AS parts ORDER BY part, n",
                    ))
                    .bind(tenant.as_str())
                    .bind(consumer.as_str())
                    .bind(db_time(known_at))
                    .bind(MAX_ANCESTRY as i64)
                    .bind(service.as_str())
                    .fetch_all(self.conn())
                    .await
                    .map_err(internal("entitlement rows"))?;
                let mut out = EntitlementRows::default();
                let decode = |body: Option<Json<serde_json::Value>>| {
                    body.ok_or_else(|| Error::internal("an entitlement row without its body"))
                };
                for (part, _, party, body) in rows {
                    match part {
                        0 => out.ancestry.push(Id::generated(
                            party.ok_or_else(|| Error::internal("an ancestry row without its party"))?,
                        )),
                        1 => out.service = Some(from_json(decode(body)?.0)?),
                        2 => out.revisions.push(from_json(decode(body)?.0)?),
                        _ => out.overrides.push(from_json(decode(body)?.0)?),
                    }
                }
                Ok(out)
            }

            async fn party_ancestry(
                &mut self,
                tenant: &Id,
                party: &Id,
                known_at: DateTime<Utc>,
            ) -> Result<Vec<Id>> {
                let rows: Vec<String> = sqlx::query_scalar(
                    concat!(
                        $crate::store::sql::ancestry_cte!(),
                        "SELECT id FROM chain ORDER BY depth"
                    ),
                )
                .bind(tenant.as_str())
                .bind(party.as_str())
                .bind(db_time(known_at))
                .bind(MAX_ANCESTRY as i64)
                .fetch_all(self.conn())
                .await
                .map_err(internal("party ancestry"))?;
                Ok(rows.into_iter().map(Id::generated).collect())
            }

            async fn entitlement_revisions(
                &mut self,
                tenant: &Id,
                service: &Id,
            ) -> Result<Vec<Revision>> {
                let rows: Vec<Json<Revision>> = sqlx::query_scalar(
                    "SELECT r.body FROM agreement_revisions r WHERE r.tenant = $1 \
                     AND r.agreement_id IN (SELECT s.agreement_id FROM revision_services s \
                       WHERE s.tenant = $1 AND s.service_id = $2 \
                       AND s.kind IN ('SERVICE_LEVEL', 'CUSTOMER', 'INTERNAL')) \
                     ORDER BY r.agreement_id, r.seq",
                )
                .bind(tenant.as_str())
                .bind(service.as_str())
                .fetch_all(self.conn())
                .await
                .map_err(internal("entitlement revisions"))?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn overrides_recorded_after(
                &mut self,
                tenant: &Id,
                agreements: &[Id],
                known_at: DateTime<Utc>,
            ) -> Result<Vec<Override>> {
                if agreements.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT h.body FROM override_history h WHERE h.tenant = ",
                );
                q.push_bind(tenant.as_str()).push(" AND h.agreement_id IN (");
                Self::push_ids(&mut q, agreements);
                q.push(
                    ") AND h.recorded_from = (SELECT MIN(f.recorded_from) FROM override_history f \
                     WHERE f.tenant = h.tenant AND f.agreement_id = h.agreement_id \
                     AND f.override_id = h.override_id) AND h.recorded_from > ",
                )
                .push_bind(db_time(known_at))
                .push(" ORDER BY h.agreement_id, h.override_id");
                let rows: Vec<Json<Override>> = q
                    .build_query_scalar()
                    .fetch_all(self.conn())
                    .await
                    .map_err(internal("overrides recorded after"))?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn entitlement_overrides(
                &mut self,
                tenant: &Id,
                agreements: &[Id],
                known_at: DateTime<Utc>,
            ) -> Result<Vec<Override>> {
                if agreements.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT body FROM override_history WHERE tenant = ",
                );
                q.push_bind(tenant.as_str())
                    .push(" AND recorded_from <= ")
                    .push_bind(db_time(known_at))
                    .push(" AND (recorded_until IS NULL OR recorded_until > ")
                    .push_bind(db_time(known_at))
                    .push(") AND agreement_id IN (");
                Self::push_ids(&mut q, agreements);
                q.push(") ORDER BY agreement_id, override_id");
                let rows: Vec<Json<Override>> = q
                    .build_query_scalar()
                    .fetch_all(self.conn())
                    .await
                    .map_err(internal("entitlement overrides"))?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }
        }

        /// The page-token secret: created by the first replica to ask, then
        /// shared by all.
        async fn page_token_secret(pool: &sqlx::Pool<$db>) -> Result<Vec<u8>> {
            let fresh = hex::encode(rand::random::<[u8; 32]>());
            sqlx::query(
                "INSERT INTO server_settings (key, value) VALUES ('page_token_secret', $1) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(&fresh)
            .execute(pool)
            .await
            .map_err(internal("store page token secret"))?;
            let secret: String = sqlx::query_scalar(
                "SELECT value FROM server_settings WHERE key = 'page_token_secret'",
            )
            .fetch_one(pool)
            .await
            .map_err(internal("read page token secret"))?;
            Ok(secret.into_bytes())
        }

        impl $tx {
            /// One resource body by key, or none.
            async fn fetch_body<T>(
                &mut self,
                sql: &'static str,
                keys: &[&str],
                context: &'static str,
            ) -> Result<Option<T>>
            where
                T: serde::de::DeserializeOwned + Send + Unpin + 'static,
            {
                let mut query = sqlx::query_scalar::<_, Json<T>>(sql);
                for key in keys {
                    query = query.bind(*key);
                }
                let row = query.fetch_optional(self.conn()).await.map_err(internal(context))?;
                Ok(row.map(|j| j.0))
            }

            /// A keyset page of bodies: `sql` takes `keys`, then the last id
            /// seen (or NULL) and the limit.
            async fn list_bodies<T>(
                &mut self,
                sql: &'static str,
                keys: &[&str],
                after: Option<&str>,
                limit: i64,
                context: &'static str,
            ) -> Result<Vec<T>>
            where
                T: serde::de::DeserializeOwned + Send + Unpin + 'static,
            {
                let mut query = sqlx::query_scalar::<_, Json<T>>(sql);
                for key in keys {
                    query = query.bind(*key);
                }
                let rows = query
                    .bind(after)
                    .bind(limit)
                    .fetch_all(self.conn())
                    .await
                    .map_err(internal(context))?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn fetch_tenant(&mut self, id: &Id, for_update: bool) -> Result<Option<Tenant>> {
                let sql = Self::locking(
                    for_update,
                    "SELECT body FROM tenants WHERE id = $1",
                    concat!("SELECT body FROM tenants WHERE id = $1", $for_update),
                );
                self.fetch_body(sql, &[id.as_str()], "get tenant").await
            }

            async fn fetch_party(&mut self, tenant: &Id, id: &Id, for_update: bool) -> Result<Option<Party>> {
                let sql = Self::locking(
                    for_update,
                    "SELECT body FROM parties WHERE tenant = $1 AND id = $2",
                    concat!("SELECT body FROM parties WHERE tenant = $1 AND id = $2", $for_update),
                );
                self.fetch_body(sql, &[tenant.as_str(), id.as_str()], "get party").await
            }

            async fn fetch_service(&mut self, tenant: &Id, id: &Id, for_update: bool) -> Result<Option<Service>> {
                let sql = Self::locking(
                    for_update,
                    "SELECT body FROM services WHERE tenant = $1 AND id = $2",
                    concat!("SELECT body FROM services WHERE tenant = $1 AND id = $2", $for_update),
                );
                self.fetch_body(sql, &[tenant.as_str(), id.as_str()], "get service").await
            }

            async fn fetch_agreement(&mut self, tenant: &Id, id: &Id, for_update: bool) -> Result<Option<Agreement>> {
                let sql = Self::locking(
                    for_update,
                    "SELECT body FROM agreements WHERE tenant = $1 AND id = $2",
                    concat!("SELECT body FROM agreements WHERE tenant = $1 AND id = $2", $for_update),
                );
                self.fetch_body(sql, &[tenant.as_str(), id.as_str()], "get agreement").await
            }

            async fn fetch_override(&mut self, tenant: &Id, agreement: &Id, id: &Id, for_update: bool) -> Result<Option<Override>> {
                let sql = Self::locking(
                    for_update,
                    "SELECT body FROM overrides WHERE tenant = $1 AND agreement_id = $2 AND id = $3",
                    concat!(
                        "SELECT body FROM overrides WHERE tenant = $1 AND agreement_id = $2 AND id = $3",
                        $for_update
                    ),
                );
                self.fetch_body(sql, &[tenant.as_str(), agreement.as_str(), id.as_str()], "get override").await
            }

            async fn fetch_api_key(&mut self, tenant: &Id, id: &Id, for_update: bool) -> Result<Option<ApiKey>> {
                let sql = Self::locking(
                    for_update,
                    "SELECT body FROM api_keys WHERE tenant = $1 AND id = $2",
                    concat!("SELECT body FROM api_keys WHERE tenant = $1 AND id = $2", $for_update),
                );
                self.fetch_body(sql, &[tenant.as_str(), id.as_str()], "get api key").await
            }

            /// Writes the side tables that filters and foreign keys use.
            async fn write_agreement_links(&mut self, a: &Agreement) -> Result<()> {
                for service in &a.services {
                    sqlx::query(
                        "INSERT INTO agreement_services (tenant, agreement_id, service_id) VALUES ($1, $2, $3)",
                    )
                    .bind(a.tenant.as_str())
                    .bind(a.id.as_str())
                    .bind(service.as_str())
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &a.name()))?;
                }
                for (key, value) in &a.labels {
                    sqlx::query(
                        "INSERT INTO agreement_labels (tenant, agreement_id, key, value) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(a.tenant.as_str())
                    .bind(a.id.as_str())
                    .bind(key.as_str())
                    .bind(value.as_str())
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &a.name()))?;
                }
                for supported in &a.supports {
                    sqlx::query(
                        "INSERT INTO agreement_supports (tenant, agreement_id, supported_id) VALUES ($1, $2, $3)",
                    )
                    .bind(a.tenant.as_str())
                    .bind(a.id.as_str())
                    .bind(supported.as_str())
                    .execute(self.conn())
                    .await
                    .map_err(|e| translate(e, &a.name()))?;
                }
                Ok(())
            }
        }
    };
}

pub(crate) use ancestry_cte;
pub(crate) use impl_tx;
