//! What a refused statement means to a client: one table from each
//! constraint of the schema (by its PostgreSQL name, or the columns SQLite
//! names) to the resource that already exists or the reference that is
//! missing or in use. A constraint not listed here is a fault (INTERNAL,
//! logged); a statement out of time is DEADLINE_EXCEEDED; a transaction the
//! database aborted in a conflict with another (a deadlock, a serialization
//! failure) is contention, which the client may retry (UNAVAILABLE).

use tracing::warn;

use super::connection::{Failure, Violation};
use crate::error::{Error, Precondition};

/// What a statement was doing when a constraint refused it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// Inserting or updating the resource so named.
    Writes(&'a str),
    /// Deleting the resource so named.
    Deletes(&'a str),
}

/// What a constraint stands for.
#[derive(Debug)]
enum Meaning {
    /// The key of a resource: taken means it already exists.
    Key,
    /// A reference from one row to another. Writing the referring row, the
    /// referred one is `missing`; deleting the referred row, it is still in
    /// use `as` something of another resource.
    Reference {
        missing: &'static str,
        used_as: &'static str,
    },
}

#[derive(Debug)]
struct Constraint {
    /// Its name on PostgreSQL.
    postgres: &'static str,
    /// The columns SQLite names when the key is taken (`None` for foreign
    /// keys, which SQLite does not name).
    sqlite: Option<&'static str>,
    meaning: Meaning,
}

const fn key(postgres: &'static str, sqlite: &'static str) -> Constraint {
    Constraint {
        postgres,
        sqlite: Some(sqlite),
        meaning: Meaning::Key,
    }
}

const fn reference(
    postgres: &'static str,
    missing: &'static str,
    used_as: &'static str,
) -> Constraint {
    Constraint {
        postgres,
        sqlite: None,
        meaning: Meaning::Reference { missing, used_as },
    }
}

/// The constraints a client's call can run into. Left out, and so internal
/// faults: keys that hold generated values (`tenants_uid`,
/// `api_keys_key_hash_key`), the side tables' keys (the domain refuses
/// duplicate services, labels and supports) and their references to the
/// row written in the same transaction, and `request_ids_pkey`, which
/// `claim_request` resolves itself.
const CONSTRAINTS: &[Constraint] = &[
    key("tenants_pkey", "tenants.id"),
    key("parties_pkey", "parties.tenant, parties.id"),
    key("services_pkey", "services.tenant, services.id"),
    key("agreements_pkey", "agreements.tenant, agreements.id"),
    key(
        "agreement_revisions_pkey",
        "agreement_revisions.tenant, agreement_revisions.agreement_id, agreement_revisions.id",
    ),
    key(
        "agreement_revisions_tenant_agreement_id_seq_key",
        "agreement_revisions.tenant, agreement_revisions.agreement_id, agreement_revisions.seq",
    ),
    key(
        "overrides_pkey",
        "overrides.tenant, overrides.agreement_id, overrides.id",
    ),
    key("api_keys_pkey", "api_keys.tenant, api_keys.id"),
    key("audit_events_pkey", "audit_events.tenant, audit_events.id"),
    reference("parties_tenant_fkey", "its tenant", "the tenant of a party"),
    reference(
        "parties_tenant_parent_fkey",
        "its parent party",
        "the parent of another party",
    ),
    reference(
        "services_tenant_fkey",
        "its tenant",
        "the tenant of a service",
    ),
    reference(
        "services_tenant_owner_fkey",
        "its owner party",
        "the owner of a service",
    ),
    reference(
        "agreements_tenant_fkey",
        "its tenant",
        "the tenant of an agreement",
    ),
    reference(
        "agreements_tenant_provider_fkey",
        "its provider party",
        "the provider of an agreement",
    ),
    reference(
        "agreements_tenant_consumer_fkey",
        "its consumer party",
        "the consumer of an agreement",
    ),
    reference(
        "agreement_services_tenant_service_id_fkey",
        "a service it covers",
        "a service an agreement covers",
    ),
    reference(
        "agreement_supports_tenant_supported_id_fkey",
        "an agreement it supports",
        "an agreement another one supports",
    ),
    reference(
        "agreement_revisions_tenant_agreement_id_fkey",
        "its agreement",
        "the agreement of a revision",
    ),
    reference(
        "overrides_tenant_agreement_id_fkey",
        "its agreement",
        "the agreement of an override",
    ),
    reference(
        "overrides_tenant_consumer_fkey",
        "its consumer party",
        "the consumer of an override",
    ),
    reference(
        "api_keys_tenant_fkey",
        "its tenant",
        "the tenant of an API key",
    ),
];

fn find(violation: &Violation) -> Option<&'static Constraint> {
    CONSTRAINTS.iter().find(|c| match violation {
        Violation::Named(name) => c.postgres == name,
        Violation::UniqueColumns(columns) => c.sqlite == Some(columns.as_str()),
        Violation::ForeignKey => false,
    })
}

/// Translates a failed write of `subject` into the error its client gets.
pub(crate) fn refused(failure: Failure, subject: Subject<'_>) -> Error {
    let (name, deleting) = match subject {
        Subject::Writes(name) => (name, false),
        Subject::Deletes(name) => (name, true),
    };
    let (violation, error) = match failure {
        Failure::Constraint(violation, error) => (violation, error),
        Failure::OutOfTime => return out_of_time(),
        Failure::Contention(error) => return contention(&error, name),
        Failure::Other(error) => {
            return Error::Internal(
                anyhow::Error::new(error).context(format!("database error on {name}")),
            );
        }
    };
    let meaning = match (&violation, find(&violation)) {
        (_, Some(constraint)) => &constraint.meaning,
        // SQLite does not say which foreign key failed: the statement says
        // which way the reference goes.
        (Violation::ForeignKey, None) => {
            let message = if deleting {
                format!("{name} is in use by another resource")
            } else {
                format!("{name} refers to a resource that does not exist")
            };
            return Error::precondition(Precondition::ResourceInUse, message);
        }
        (_, None) => {
            return Error::Internal(
                anyhow::Error::new(error)
                    .context(format!("unknown constraint {violation:?} refused {name}")),
            );
        }
    };
    match (meaning, deleting) {
        (Meaning::Key, false) => Error::AlreadyExists(name.to_string()),
        (Meaning::Reference { missing, .. }, false) => Error::precondition(
            Precondition::ResourceInUse,
            format!("{name}: {missing} does not exist"),
        ),
        (Meaning::Reference { used_as, .. }, true) => Error::precondition(
            Precondition::ResourceInUse,
            format!("{name} is in use as {used_as}"),
        ),
        (Meaning::Key, true) => Error::Internal(
            anyhow::Error::new(error).context(format!("a key refused the deletion of {name}")),
        ),
    }
}

/// Translates the failure of a statement that only a fault can make fail:
/// internal, with `context` for the log, but for a statement out of time.
pub(crate) fn internal(context: &'static str) -> impl Fn(Failure) -> Error {
    move |failure| match failure {
        Failure::OutOfTime => out_of_time(),
        Failure::Contention(e) => contention(&e, context),
        Failure::Constraint(_, e) | Failure::Other(e) => {
            Error::Internal(anyhow::Error::new(e).context(context))
        }
    }
}

/// Translates a failure to open a transaction: out of time, or the database
/// is unreachable.
pub(crate) fn begin_failed(failure: Failure) -> Error {
    match failure {
        Failure::OutOfTime => out_of_time(),
        Failure::Contention(e) => contention(&e, "begin"),
        Failure::Constraint(_, e) | Failure::Other(e) => {
            Error::Unavailable(format!("database unavailable: {e}"))
        }
    }
}

/// The database aborted the transaction to resolve a conflict with another
/// (PostgreSQL 40P01 deadlock_detected, 40001 serialization_failure): it
/// was rolled back whole, so the same call may simply be made again, which
/// AIP-194 asks clients to do on UNAVAILABLE (ABORTED would tell them to
/// re-read and decide again, as for a stale etag, which this is not). The
/// cause is logged: a deadlock between Accord's own transactions means two
/// of them take their locks in different orders.
pub(crate) fn contention(error: &sqlx::Error, context: &str) -> Error {
    warn!(%error, context, "the database aborted a transaction in a conflict with another");
    Error::Contention(
        "the database aborted the call's transaction in a conflict with a concurrent one \
         (a deadlock or a serialization failure); nothing was written: retry the call"
            .into(),
    )
}

/// The call's budget ran out while the database worked for it (PostgreSQL's
/// `statement_timeout` or `lock_timeout`, SQLite's busy timeout, each bound
/// to the call's deadline): not a fault of the server, and the transaction
/// is rolled back.
pub(crate) fn out_of_time() -> Error {
    Error::DeadlineExceeded(
        "the call's deadline, or the server's statement_timeout_seconds, passed before the \
         database answered"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    fn violation(v: Violation) -> Failure {
        Failure::Constraint(v, sqlx::Error::RowNotFound)
    }

    #[test]
    fn both_engines_name_a_taken_key_alike() {
        for v in [
            Violation::Named("parties_pkey".into()),
            Violation::UniqueColumns("parties.tenant, parties.id".into()),
        ] {
            let error = refused(violation(v), Subject::Writes("tenants/a/parties/p"));
            assert!(
                matches!(&error, Error::AlreadyExists(n) if n == "tenants/a/parties/p"),
                "{error:?}"
            );
        }
    }

    #[test]
    fn a_reference_is_missing_on_write_and_in_use_on_delete() {
        let fk = || violation(Violation::Named("services_tenant_owner_fkey".into()));
        let written = refused(fk(), Subject::Writes("tenants/a/services/s"));
        assert_eq!(
            written.to_string(),
            "tenants/a/services/s: its owner party does not exist"
        );
        let deleted = refused(fk(), Subject::Deletes("tenants/a/parties/p"));
        assert_eq!(
            deleted.to_string(),
            "tenants/a/parties/p is in use as the owner of a service"
        );
        assert!(matches!(
            deleted,
            Error::FailedPrecondition {
                reason: Precondition::ResourceInUse,
                ..
            }
        ));
    }

    #[test]
    fn an_unnamed_sqlite_foreign_key_says_which_way() {
        let written = refused(
            violation(Violation::ForeignKey),
            Subject::Writes("tenants/a/parties/p"),
        );
        assert!(matches!(written, Error::FailedPrecondition { .. }));
        assert!(written.to_string().contains("does not exist"));
    }

    #[test]
    fn an_unknown_constraint_is_internal() {
        for v in [
            Violation::Named("tenants_uid".into()),
            Violation::UniqueColumns("tenants.uid".into()),
        ] {
            let error = refused(violation(v), Subject::Writes("tenants/a"));
            assert!(matches!(error, Error::Internal(_)), "{error:?}");
        }
    }

    #[test]
    fn a_transaction_aborted_in_a_conflict_may_be_retried() {
        let aborted = || Failure::Contention(sqlx::Error::RowNotFound);
        let errors = [
            refused(aborted(), Subject::Writes("tenants/a/parties/p")),
            internal("read samples")(aborted()),
            begin_failed(aborted()),
        ];
        for error in errors {
            assert!(matches!(error, Error::Contention(_)), "{error:?}");
            let status = tonic::Status::from(error);
            assert_eq!(status.code(), tonic::Code::Unavailable);
            let info = status.get_details_error_info().expect("ErrorInfo");
            assert_eq!(info.reason, "CONTENTION");
            assert!(status.message().contains("retry"), "{}", status.message());
        }
    }

    #[test]
    fn every_key_names_its_columns_on_sqlite() {
        for c in CONSTRAINTS {
            assert_eq!(
                matches!(c.meaning, Meaning::Key),
                c.sqlite.is_some(),
                "{}",
                c.postgres
            );
        }
    }
}
