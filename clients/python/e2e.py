#!/usr/bin/env python3
"""End-to-end check of the Python client (accord-client) against a real server.

    python e2e.py ADDRESS

ACCORD_BOOTSTRAP_KEY must hold the server's bootstrap key. In a tenant of its
own (a fresh random id, so it can run again on the same server):

1. health: grpc.health.v1 Check("") answers SERVING (waits up to 30 s);
2. creates, with the bootstrap key, the tenant and a TENANT_ADMIN key, and
   with that key a provider and a customer, a service, and a SERVICE_LEVEL
   agreement with one objective, which it publishes (ACTIVE);
3. resolves the customer's entitlement on the service: the objective, traced
   to the agreement's revision;
4. reports two measurements: one accepted, one rejected UNKNOWN_INDICATOR;
5. makes a call the server refuses (a party id with capitals) and reads the
   error's details from grpc-status-details-bin: INVALID_ARGUMENT with a
   BadRequest field violation on party_id and ErrorInfo(reason
   INVALID_ARGUMENT, domain accord).

Prints what it checked; exits 1 at the first difference, 2 on bad usage.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import uuid
from datetime import datetime, timezone

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accord_client import bearer, find_detail, status
from accord_client.v1 import agreement_pb2, agreement_pb2_grpc
from accord_client.v1 import api_key_pb2, api_key_pb2_grpc
from accord_client.v1 import entitlement_pb2, entitlement_pb2_grpc
from accord_client.v1 import measurement_pb2, measurement_pb2_grpc
from accord_client.v1 import party_pb2, party_pb2_grpc
from accord_client.v1 import service_pb2, service_pb2_grpc
from accord_client.v1 import tenant_pb2, tenant_pb2_grpc
from accord_client.v1 import terms_pb2

TIMEOUT = 10.0  # seconds, for each call
HEALTH_WAIT = 30.0  # seconds, for the server to turn SERVING


class Mismatch(Exception):
    """The server answered, but not what the check expected."""


def expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise Mismatch(f"{what}: got {got!r}, want {want!r}")
    print(f"  ok  {what} = {got!r}")


def wait_serving(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + HEALTH_WAIT
    while True:
        try:
            response: health_pb2.HealthCheckResponse = stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                break
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        except grpc.RpcError as e:
            if not isinstance(e, grpc.Call) or e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            last = f"UNAVAILABLE: {e.details()}"
        if time.monotonic() > deadline:
            raise Mismatch(f"health: not SERVING after {HEALTH_WAIT:g} s ({last})")
        time.sleep(0.2)
    expect('health Check("")', "SERVING", "SERVING")


def run(address: str, bootstrap_key: str) -> None:
    with grpc.insecure_channel(address) as channel:
        print("1. health")
        wait_serving(channel)

        tenants = tenant_pb2_grpc.TenantServiceStub(channel)
        keys = api_key_pb2_grpc.ApiKeyServiceStub(channel)
        parties = party_pb2_grpc.PartyServiceStub(channel)
        catalog = service_pb2_grpc.ServiceCatalogServiceStub(channel)
        agreements = agreement_pb2_grpc.AgreementServiceStub(channel)
        entitlements = entitlement_pb2_grpc.EntitlementServiceStub(channel)
        measurements = measurement_pb2_grpc.MeasurementServiceStub(channel)

        print("2. create")
        platform = bearer(bootstrap_key)
        tenant_id = f"e2e-py-{secrets.token_hex(4)}"
        tenant: tenant_pb2.Tenant = tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
            tenant_id=tenant_id,
            tenant=tenant_pb2.Tenant(display_name="Python e2e"),
            request_id=str(uuid.uuid4()),
        ), timeout=TIMEOUT, metadata=platform)
        expect("tenant.name", tenant.name, f"tenants/{tenant_id}")

        created_key: api_key_pb2.CreateApiKeyResponse = keys.CreateApiKey(
            api_key_pb2.CreateApiKeyRequest(
                parent=tenant.name,
                api_key_id="admin",
                api_key=api_key_pb2.ApiKey(display_name="e2e admin",
                                           role=api_key_pb2.ROLE_TENANT_ADMIN),
                request_id=str(uuid.uuid4()),
            ), timeout=TIMEOUT, metadata=platform)
        expect("api_key.role", api_key_pb2.Role.Name(created_key.api_key.role),
               "ROLE_TENANT_ADMIN")
        admin = bearer(created_key.secret)

        def party(party_id: str, kind: party_pb2.PartyKind) -> party_pb2.Party:
            created: party_pb2.Party = parties.CreateParty(party_pb2.CreatePartyRequest(
                parent=tenant.name, party_id=party_id,
                party=party_pb2.Party(display_name=party_id.title(), kind=kind),
                request_id=str(uuid.uuid4()),
            ), timeout=TIMEOUT, metadata=admin)
            expect(f"party {party_id}", created.name, f"{tenant.name}/parties/{party_id}")
            return created

        provider = party("platform", party_pb2.PARTY_KIND_PROVIDER)
        customer = party("bank", party_pb2.PARTY_KIND_CUSTOMER)
        service: service_pb2.Service = catalog.CreateService(service_pb2.CreateServiceRequest(
            parent=tenant.name, service_id="payments",
            service=service_pb2.Service(display_name="Payments", owner=provider.name),
            request_id=str(uuid.uuid4()),
        ), timeout=TIMEOUT, metadata=admin)
        expect("service.owner", service.owner, provider.name)

        effective_from = timestamp_pb2.Timestamp()
        effective_from.FromJsonString("2026-01-01T00:00:00Z")
        agreement: agreement_pb2.Agreement = agreements.CreateAgreement(
            agreement_pb2.CreateAgreementRequest(
                parent=tenant.name, agreement_id="payments-sla",
                agreement=agreement_pb2.Agreement(
                    display_name="Payments SLA",
                    kind=agreement_pb2.AGREEMENT_KIND_SERVICE_LEVEL,
                    provider=provider.name,
                    services=[service.name],
                    effective_from=effective_from,
                    objectives=[terms_pb2.Objective(
                        key="availability",
                        display_name="Availability",
                        indicator="http_success",
                        kind=terms_pb2.OBJECTIVE_KIND_RATIO,
                        target=0.999,
                        window=terms_pb2.Window(rolling=terms_pb2.RollingWindow(
                            duration=duration_pb2.Duration(seconds=30 * 86400))),
                    )],
                ),
                request_id=str(uuid.uuid4()),
            ), timeout=TIMEOUT, metadata=admin)
        expect("agreement.state", agreement_pb2.AgreementState.Name(agreement.state),
               "AGREEMENT_STATE_DRAFT")
        agreement = agreements.PublishAgreement(agreement_pb2.PublishAgreementRequest(
            name=agreement.name, etag=agreement.etag,
        ), timeout=TIMEOUT, metadata=admin)
        expect("published agreement.state",
               agreement_pb2.AgreementState.Name(agreement.state), "AGREEMENT_STATE_ACTIVE")

        print("3. resolve")
        entitlement: entitlement_pb2.Entitlement = entitlements.ResolveEntitlement(
            entitlement_pb2.ResolveEntitlementRequest(
                parent=tenant.name, consumer=customer.name, service=service.name,
            ), timeout=TIMEOUT, metadata=admin)
        expect("objectives", [o.objective.key for o in entitlement.objectives],
               ["availability"])
        objective = entitlement.objectives[0]
        expect("objective target", objective.objective.target, 0.999)
        expect("provenance agreement", objective.provenance.agreement, agreement.name)
        expect("provenance revision", objective.provenance.revision_id, agreement.revision_id)
        if not entitlement.version:
            raise Mismatch("entitlement.version is empty")

        print("4. report")
        now = timestamp_pb2.Timestamp()
        now.FromDatetime(datetime.now(timezone.utc).replace(microsecond=0))
        report: measurement_pb2.ReportMeasurementsResponse = measurements.ReportMeasurements(
            measurement_pb2.ReportMeasurementsRequest(parent=tenant.name, measurements=[
                measurement_pb2.Measurement(
                    id="py-requests-1", service=service.name, indicator="http_success",
                    time=now, counts=measurement_pb2.Counts(good=999, total=1000)),
                measurement_pb2.Measurement(
                    id="py-latency-1", service=service.name, indicator="latency_p99",
                    time=now, sample=measurement_pb2.Sample(value=0.2)),
            ]), timeout=TIMEOUT, metadata=admin)
        expect("accepted", report.accepted, 1)
        expect("duplicates", report.duplicates, 0)
        expect("rejections", [(r.index, r.id, r.reason) for r in report.rejections],
               [(1, "py-latency-1", "UNKNOWN_INDICATOR")])

        print("5. error details")
        try:
            parties.CreateParty(party_pb2.CreatePartyRequest(
                parent=tenant.name, party_id="Not-Valid",
                party=party_pb2.Party(display_name="Bad id",
                                      kind=party_pb2.PARTY_KIND_CUSTOMER),
            ), timeout=TIMEOUT, metadata=admin)
        except grpc.RpcError as e:
            if not isinstance(e, grpc.Call):
                raise
            expect("code", e.code().name, "INVALID_ARGUMENT")
            rpc_status = status(e)
            if rpc_status is None:
                raise Mismatch("no grpc-status-details-bin in the trailers") from e
            expect("status.code", rpc_status.code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
            bad_request = find_detail(e, error_details_pb2.BadRequest)
            if bad_request is None:
                raise Mismatch(f"no BadRequest in {rpc_status.details}") from e
            expect("violations", [v.field for v in bad_request.field_violations],
                   ["party_id"])
            print(f"      ({bad_request.field_violations[0].description})")
            info = find_detail(e, error_details_pb2.ErrorInfo)
            if info is None:
                raise Mismatch(f"no ErrorInfo in {rpc_status.details}") from e
            expect("ErrorInfo", (info.reason, info.domain), ("INVALID_ARGUMENT", "accord"))
        else:
            raise Mismatch("CreateParty with party_id 'Not-Valid' succeeded")


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} ADDRESS", file=sys.stderr)
        return 2
    bootstrap_key = os.environ.get("ACCORD_BOOTSTRAP_KEY")
    if not bootstrap_key:
        print("e2e: set ACCORD_BOOTSTRAP_KEY to the server's bootstrap key", file=sys.stderr)
        return 2
    try:
        run(sys.argv[1], bootstrap_key)
    except Mismatch as e:
        print(f"e2e: FAIL: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        code = e.code().name if isinstance(e, grpc.Call) else "?"
        details = e.details() if isinstance(e, grpc.Call) else str(e)
        print(f"e2e: FAIL: RPC failed: {code}: {details}", file=sys.stderr)
        return 1
    print("e2e: python OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
