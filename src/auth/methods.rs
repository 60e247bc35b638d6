//! The one table of who may call what: every RPC of `accord.v1`, by full method
//! path, with the roles allowed. An RPC missing from it is refused, and a test
//! fails when the protos have an RPC the table lacks.

use crate::domain::api_key::Role::{self, *};

const READERS: &[Role] = &[TenantAdmin, Editor, Reader];
const WRITERS: &[Role] = &[TenantAdmin, Editor];
const ADMINS: &[Role] = &[PlatformAdmin, TenantAdmin];
const PLATFORM: &[Role] = &[PlatformAdmin];
/// Measurements are reported by a REPORTER key (a service's own), or by the
/// tenant's admin; readers and editors of the registry do not report.
const REPORTERS: &[Role] = &[TenantAdmin, Reporter];

pub const METHOD_ROLES: &[(&str, &[Role])] = &[
    ("/accord.v1.TenantService/CreateTenant", PLATFORM),
    (
        "/accord.v1.TenantService/GetTenant",
        &[PlatformAdmin, TenantAdmin, Editor, Reader, Reporter],
    ),
    ("/accord.v1.TenantService/ListTenants", PLATFORM),
    ("/accord.v1.TenantService/UpdateTenant", PLATFORM),
    ("/accord.v1.TenantService/DeleteTenant", PLATFORM),
    ("/accord.v1.ApiKeyService/CreateApiKey", ADMINS),
    ("/accord.v1.ApiKeyService/GetApiKey", ADMINS),
    ("/accord.v1.ApiKeyService/ListApiKeys", ADMINS),
    ("/accord.v1.ApiKeyService/RevokeApiKey", ADMINS),
    ("/accord.v1.PartyService/CreateParty", WRITERS),
    ("/accord.v1.PartyService/GetParty", READERS),
    ("/accord.v1.PartyService/ListParties", READERS),
    ("/accord.v1.PartyService/UpdateParty", WRITERS),
    ("/accord.v1.PartyService/DeleteParty", WRITERS),
    ("/accord.v1.ServiceCatalogService/CreateService", WRITERS),
    ("/accord.v1.ServiceCatalogService/GetService", READERS),
    ("/accord.v1.ServiceCatalogService/ListServices", READERS),
    ("/accord.v1.ServiceCatalogService/UpdateService", WRITERS),
    ("/accord.v1.ServiceCatalogService/DeleteService", WRITERS),
    ("/accord.v1.AgreementService/CreateAgreement", WRITERS),
    ("/accord.v1.AgreementService/GetAgreement", READERS),
    ("/accord.v1.AgreementService/ListAgreements", READERS),
    ("/accord.v1.AgreementService/UpdateAgreement", WRITERS),
    ("/accord.v1.AgreementService/DeleteAgreement", WRITERS),
    ("/accord.v1.AgreementService/PublishAgreement", WRITERS),
    ("/accord.v1.AgreementService/TerminateAgreement", WRITERS),
    (
        "/accord.v1.AgreementService/ListAgreementRevisions",
        READERS,
    ),
    ("/accord.v1.AgreementService/GetAgreementRevision", READERS),
    ("/accord.v1.AgreementService/CreateOverride", WRITERS),
    ("/accord.v1.AgreementService/GetOverride", READERS),
    ("/accord.v1.AgreementService/ListOverrides", READERS),
    ("/accord.v1.AgreementService/UpdateOverride", WRITERS),
    ("/accord.v1.AgreementService/DeleteOverride", WRITERS),
    ("/accord.v1.AuditService/ListAuditEvents", ADMINS),
    ("/accord.v1.EntitlementService/ResolveEntitlement", READERS),
    (
        "/accord.v1.EntitlementService/BatchResolveEntitlements",
        READERS,
    ),
    ("/accord.v1.EntitlementService/WatchEntitlements", READERS),
    ("/accord.v1.EntitlementService/ExplainEntitlement", READERS),
    (
        "/accord.v1.MeasurementService/ReportMeasurements",
        REPORTERS,
    ),
    (
        "/accord.v1.MeasurementService/StreamMeasurements",
        REPORTERS,
    ),
    ("/accord.v1.BreachService/GetBreach", READERS),
    ("/accord.v1.BreachService/ListBreaches", READERS),
    ("/accord.v1.BreachService/WatchBreaches", READERS),
    ("/accord.v1.ComplianceService/GetCompliance", READERS),
    ("/accord.v1.ComplianceService/GetCreditStatement", READERS),
];

/// The table's entry for `path`, or `None` for a method not in the table.
pub fn entry(path: &str) -> Option<(&'static str, &'static [Role])> {
    METHOD_ROLES
        .iter()
        .find(|(method, _)| *method == path)
        .copied()
}

/// The roles allowed to call `path`, or `None` for a method not in the table.
pub fn roles_for(path: &str) -> Option<&'static [Role]> {
    entry(path).map(|(_, roles)| roles)
}

/// Every RPC of the `accord.v1` services, as full method paths, read from the
/// descriptor set the server serves through reflection.
pub fn accord_methods() -> Vec<String> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set decodes");
    let mut methods = Vec::new();
    for file in set.file {
        if file.package() != "accord.v1" {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                methods.push(format!("/accord.v1.{}/{}", service.name(), method.name()));
            }
        }
    }
    methods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_is_in_the_table_and_the_table_names_only_rpcs() {
        let methods = accord_methods();
        assert!(methods.len() >= METHOD_ROLES.len());
        for method in &methods {
            assert!(
                roles_for(method).is_some(),
                "{method} is missing from METHOD_ROLES"
            );
        }
        for (method, _) in METHOD_ROLES {
            assert!(
                methods.iter().any(|m| m == method),
                "{method} is not an RPC"
            );
        }
    }

    #[test]
    fn only_the_platform_admin_manages_tenants() {
        for (method, roles) in METHOD_ROLES {
            if method.starts_with("/accord.v1.TenantService/") && !method.ends_with("GetTenant") {
                assert_eq!(*roles, PLATFORM, "{method}");
            }
            let platform_services = ["TenantService", "ApiKeyService", "AuditService"];
            if !platform_services
                .iter()
                .any(|s| method.starts_with(&format!("/accord.v1.{s}/")))
            {
                assert!(!roles.contains(&PlatformAdmin), "{method}");
            }
        }
    }
}
