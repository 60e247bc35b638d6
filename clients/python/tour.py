#!/usr/bin/env python3
"""The README's five-minute tour of Accord, through the generated Python stubs.

    python tour.py ADDRESS

ACCORD_BOOTSTRAP_KEY must hold the server's bootstrap key: the tour creates
the tenant with it, then a TENANT_ADMIN key it uses for everything else.
Run it against a fresh server (the ids it creates are fixed, so a second run
on the same database stops at ALREADY_EXISTS). Install the accord-client
package first (setup.sh does, into .venv).

It creates a tenant, a provider and a customer, a service, a service-level
agreement with an objective, a credit schedule and a liability cap; publishes
it; gives the customer a better target with an override; renames the
agreement (an ACTIVE agreement writes a new revision), lists the revisions and
the audit trail of the agreement; resolves and explains what the customer gets.
Then, with a REPORTER key, it reports measurements (requests an hour ago, an
hour-long outage on the last day of last month, and one item refused for its
unknown indicator), reports them again (duplicates, nothing counted twice),
and reads compliance for the agreement and for the customer, last month's
closed period, the customer's credit statement, and the breaches the period
closer wrote for last month.
Exits 1 on any RPC error, printing its code and details.
"""

import datetime
import os
import sys
import time
import uuid

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from accord_client import bearer
from accord_client.v1 import agreement_pb2, agreement_pb2_grpc
from accord_client.v1 import api_key_pb2, api_key_pb2_grpc
from accord_client.v1 import audit_pb2, audit_pb2_grpc
from accord_client.v1 import breach_pb2, breach_pb2_grpc
from accord_client.v1 import compliance_pb2, compliance_pb2_grpc
from accord_client.v1 import entitlement_pb2, entitlement_pb2_grpc
from accord_client.v1 import measurement_pb2, measurement_pb2_grpc
from accord_client.v1 import party_pb2, party_pb2_grpc
from accord_client.v1 import service_pb2, service_pb2_grpc
from accord_client.v1 import tenant_pb2, tenant_pb2_grpc
from accord_client.v1 import terms_pb2

TIMEOUT = 10.0  # seconds, for each call


def request_id():
    return str(uuid.uuid4())


def timestamp(rfc3339):
    ts = timestamp_pb2.Timestamp()
    ts.FromJsonString(rfc3339)
    return ts


def days(n):
    return duration_pb2.Duration(seconds=n * 86400)


def enum_name(enum, value, prefix):
    return enum.Name(value).removeprefix(prefix)


def money(m):
    return f"{m.amount_minor / 100:,.2f} {m.currency_code}"


def percent(target):
    return f"{target * 100:g} %"


def step(title):
    if step.count:
        print()
    step.count += 1
    print(f"== {title}")


step.count = 0


def show_agreement(a):
    kind = enum_name(agreement_pb2.AgreementKind, a.kind, "AGREEMENT_KIND_")
    state = enum_name(agreement_pb2.AgreementState, a.state, "AGREEMENT_STATE_")
    print(f"{a.name}  {kind}  {state}  revision={a.revision_id or '-'}")
    print(f"  display_name: {a.display_name}")


def run(address, bootstrap_key):
    channel = grpc.insecure_channel(address)
    platform = bearer(bootstrap_key)
    tenants = tenant_pb2_grpc.TenantServiceStub(channel)
    keys = api_key_pb2_grpc.ApiKeyServiceStub(channel)
    parties = party_pb2_grpc.PartyServiceStub(channel)
    catalog = service_pb2_grpc.ServiceCatalogServiceStub(channel)
    agreements = agreement_pb2_grpc.AgreementServiceStub(channel)
    audit = audit_pb2_grpc.AuditServiceStub(channel)

    step("CreateTenant acme")
    tenant = tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant_id="acme",
        tenant=tenant_pb2.Tenant(display_name="Acme Corp"),
        request_id=request_id(),
    ), timeout=TIMEOUT, metadata=platform)
    print(f"{tenant.name}  \"{tenant.display_name}\"")

    step("CreateApiKey admin (TENANT_ADMIN), with the bootstrap key")
    created_key = keys.CreateApiKey(api_key_pb2.CreateApiKeyRequest(
        parent=tenant.name,
        api_key_id="admin",
        api_key=api_key_pb2.ApiKey(display_name="Acme admin", role=api_key_pb2.ROLE_TENANT_ADMIN),
        request_id=request_id(),
    ), timeout=TIMEOUT, metadata=platform)
    key = created_key.api_key
    print(f"{key.name}  {enum_name(api_key_pb2.Role, key.role, 'ROLE_')}"
          f"  secret={key.secret_prefix}... (shown once)")
    md = bearer(created_key.secret)

    step("CreateParty platform (PROVIDER) and bank (CUSTOMER)")
    created = {}
    for party_id, kind, display_name in (
        ("platform", party_pb2.PARTY_KIND_PROVIDER, "Platform team"),
        ("bank", party_pb2.PARTY_KIND_CUSTOMER, "Example Bank"),
    ):
        party = parties.CreateParty(party_pb2.CreatePartyRequest(
            parent=tenant.name,
            party_id=party_id,
            party=party_pb2.Party(display_name=display_name, kind=kind),
            request_id=request_id(),
        ), timeout=TIMEOUT, metadata=md)
        created[party_id] = party
        print(f"{party.name}  {enum_name(party_pb2.PartyKind, party.kind, 'PARTY_KIND_')}"
              f"  \"{party.display_name}\"")
    platform, bank = created["platform"], created["bank"]

    step("CreateService payments")
    service = catalog.CreateService(service_pb2.CreateServiceRequest(
        parent=tenant.name,
        service_id="payments",
        service=service_pb2.Service(display_name="Payments", owner=platform.name),
        request_id=request_id(),
    ), timeout=TIMEOUT, metadata=md)
    print(f"{service.name}  owner={service.owner}")

    step("CreateAgreement payments-sla (SERVICE_LEVEL)")
    agreement = agreements.CreateAgreement(agreement_pb2.CreateAgreementRequest(
        parent=tenant.name,
        agreement_id="payments-sla",
        agreement=agreement_pb2.Agreement(
            display_name="Payments SLA",
            kind=agreement_pb2.AGREEMENT_KIND_SERVICE_LEVEL,
            provider=platform.name,
            services=[service.name],
            effective_from=timestamp("2026-01-01T00:00:00Z"),
            objectives=[terms_pb2.Objective(
                key="availability",
                display_name="Availability",
                indicator="http_success",
                kind=terms_pb2.OBJECTIVE_KIND_RATIO,
                target=0.999,
                window=terms_pb2.Window(rolling=terms_pb2.RollingWindow(duration=days(30))),
            ), terms_pb2.Objective(
                key="uptime",
                display_name="Monthly uptime",
                indicator="outage",
                kind=terms_pb2.OBJECTIVE_KIND_UPTIME,
                target=0.999,
                window=terms_pb2.Window(calendar=terms_pb2.CalendarWindow(
                    period=terms_pb2.CALENDAR_PERIOD_MONTH, time_zone="UTC")),
            )],
            credits=terms_pb2.CreditSchedule(
                tiers=[
                    terms_pb2.CreditTier(attainment_below=0.999, credit_percent=10),
                    terms_pb2.CreditTier(attainment_below=0.99, credit_percent=25),
                ],
                fee=terms_pb2.Money(amount_minor=100000, currency_code="EUR"),
            ),
            clauses=[terms_pb2.Clause(
                kind=terms_pb2.CLAUSE_KIND_LIABILITY_CAP,
                title="Liability cap",
                text="The provider's total liability is capped at twelve months of fees.",
                amount=terms_pb2.Money(amount_minor=1200000, currency_code="EUR"),
            )],
        ),
        request_id=request_id(),
    ), timeout=TIMEOUT, metadata=md)
    show_agreement(agreement)
    for o in agreement.objectives:
        kind = enum_name(terms_pb2.ObjectiveKind, o.kind, "OBJECTIVE_KIND_")
        if o.window.HasField("rolling"):
            window = f"a rolling {o.window.rolling.duration.seconds // 86400} days"
        else:
            period = enum_name(terms_pb2.CalendarPeriod, o.window.calendar.period,
                               "CALENDAR_PERIOD_").lower()
            window = f"each calendar {period} ({o.window.calendar.time_zone})"
        print(f"  objective {o.key}: {kind} {o.indicator} >= {percent(o.target)}"
              f" over {window}")
    tiers = ", ".join(f"< {percent(t.attainment_below)} -> {t.credit_percent:g} %"
                      for t in agreement.credits.tiers)
    print(f"  credits: {tiers} of {money(agreement.credits.fee)}")
    for c in agreement.clauses:
        print(f"  clause {enum_name(terms_pb2.ClauseKind, c.kind, 'CLAUSE_KIND_')}:"
              f" {money(c.amount)}")

    step("PublishAgreement")
    agreement = agreements.PublishAgreement(agreement_pb2.PublishAgreementRequest(
        name=agreement.name, etag=agreement.etag,
    ), timeout=TIMEOUT, metadata=md)
    show_agreement(agreement)

    step("CreateOverride bank-gold")
    override = agreements.CreateOverride(agreement_pb2.CreateOverrideRequest(
        parent=agreement.name,
        override_id="bank-gold",
        override=agreement_pb2.Override(
            display_name="Example Bank gold",
            consumer=bank.name,
            effective_from=timestamp("2026-01-01T00:00:00Z"),
            objective_patches=[agreement_pb2.ObjectivePatch(key="availability", target=0.9999)],
        ),
        request_id=request_id(),
    ), timeout=TIMEOUT, metadata=md)
    print(f"{override.name}  consumer={override.consumer}")
    for p in override.objective_patches:
        print(f"  {p.key}: target {percent(p.target)}")

    step("UpdateAgreement display_name (ACTIVE: writes a new revision)")
    previous = agreement.revision_id
    agreement = agreements.UpdateAgreement(agreement_pb2.UpdateAgreementRequest(
        agreement=agreement_pb2.Agreement(
            name=agreement.name,
            display_name="Payments SLA (EU)",
            etag=agreement.etag,
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    ), timeout=TIMEOUT, metadata=md)
    show_agreement(agreement)
    print(f"  previous revision={previous}")

    step("ListAgreementRevisions (newest first)")
    response = agreements.ListAgreementRevisions(agreement_pb2.ListAgreementRevisionsRequest(
        name=agreement.name,
    ), timeout=TIMEOUT, metadata=md)
    for r in response.revisions:
        print(f"{r.name}  \"{r.agreement.display_name}\"")

    step("ListAuditEvents for the agreement (newest first)")
    response = audit.ListAuditEvents(audit_pb2.ListAuditEventsRequest(
        parent=tenant.name, resource=agreement.name,
    ), timeout=TIMEOUT, metadata=md)
    for e in response.audit_events:
        method = e.method.rsplit("/", 1)[-1]
        def shown(snapshot, present):
            return repr(snapshot.fields["display_name"].string_value) if present else "-"
        before = shown(e.before, e.HasField("before"))
        after = shown(e.after, e.HasField("after"))
        print(f"{method:<18} by {e.actor}  display_name: {before} -> {after}")

    entitlements = entitlement_pb2_grpc.EntitlementServiceStub(channel)
    step("ResolveEntitlement bank on payments")
    entitlement = entitlements.ResolveEntitlement(entitlement_pb2.ResolveEntitlementRequest(
        parent=tenant.name, consumer=bank.name, service=service.name,
    ), timeout=TIMEOUT, metadata=md)
    print(f"version {entitlement.version}")
    for o in entitlement.objectives:
        p = o.provenance
        print(f"  {o.objective.key}: target {percent(o.objective.target)}"
              f"  from {p.agreement} revision {p.revision_id}")
        for f in o.patched_fields:
            print(f"    {f.field} set by {f.provenance.override}")

    step("ExplainEntitlement bank on payments")
    explanation = entitlements.ExplainEntitlement(entitlement_pb2.ExplainEntitlementRequest(
        parent=tenant.name, consumer=bank.name, service=service.name,
    ), timeout=TIMEOUT, metadata=md)
    print("ancestry: " + " -> ".join(explanation.ancestry))
    for layer in explanation.layers:
        kind = enum_name(entitlement_pb2.LayerKind, layer.kind, "LAYER_KIND_")
        outcome = enum_name(entitlement_pb2.LayerOutcome, layer.outcome, "LAYER_OUTCOME_")
        source = layer.source.override or layer.source.agreement
        print(f"  {kind:<8} {source}: {outcome} ({layer.reason})")

    step("CreateApiKey reporter (REPORTER): what services report with")
    created_key = keys.CreateApiKey(api_key_pb2.CreateApiKeyRequest(
        parent=tenant.name,
        api_key_id="reporter",
        api_key=api_key_pb2.ApiKey(display_name="Payments probes",
                                   role=api_key_pb2.ROLE_REPORTER),
        request_id=request_id(),
    ), timeout=TIMEOUT, metadata=md)
    print(f"{created_key.api_key.name}  REPORTER")
    reporter = bearer(created_key.secret)

    # An hour ago: 9,990 good requests of 10,000, service-wide. Last month: a
    # one-hour outage on its last day, from 10:00 to 11:00 UTC.
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    this_month = now.replace(day=1, hour=0, minute=0, second=0)
    last_day = this_month - datetime.timedelta(days=1)
    outage_start = last_day.replace(hour=10)
    outage_end = last_day.replace(hour=11)

    def ts(instant):
        t = timestamp_pb2.Timestamp()
        t.FromDatetime(instant)
        return t

    measurements = measurement_pb2_grpc.MeasurementServiceStub(channel)
    batch = [
        measurement_pb2.Measurement(
            id="probe-requests-1", service=service.name, indicator="http_success",
            time=ts(now - datetime.timedelta(hours=1)),
            counts=measurement_pb2.Counts(good=9990, total=10000)),
        measurement_pb2.Measurement(
            id="probe-outage-1", service=service.name, indicator="outage",
            downtime=measurement_pb2.Downtime(start_time=ts(outage_start),
                                              end_time=ts(outage_end))),
        measurement_pb2.Measurement(
            id="probe-latency-1", service=service.name, indicator="latency_p99",
            time=ts(now), sample=measurement_pb2.Sample(value=0.2)),
    ]
    step("ReportMeasurements: requests, last month's outage, an unknown indicator")
    report = measurements.ReportMeasurements(measurement_pb2.ReportMeasurementsRequest(
        parent=tenant.name, measurements=batch,
    ), timeout=TIMEOUT, metadata=reporter)
    print(f"accepted={report.accepted}  duplicates={report.duplicates}")
    for r in report.rejections:
        print(f"  rejected [{r.index}] {r.id}: {r.reason} ({r.message})")

    step("ReportMeasurements again (a retry after a lost answer counts nothing twice)")
    report = measurements.ReportMeasurements(measurement_pb2.ReportMeasurementsRequest(
        parent=tenant.name, measurements=batch[:2],
    ), timeout=TIMEOUT, metadata=reporter)
    print(f"accepted={report.accepted}  duplicates={report.duplicates}")

    compliance = compliance_pb2_grpc.ComplianceServiceStub(channel)

    def show_compliance(result):
        for o in result.objectives:
            status = enum_name(compliance_pb2.ComplianceStatus, o.status, "COMPLIANCE_STATUS_")
            start = o.period.start_time.ToDatetime().strftime("%Y-%m-%d %H:%M")
            end = o.period.end_time.ToDatetime().strftime("%Y-%m-%d %H:%M")
            attained = f"{o.attainment * 100:.4f} %" if o.HasField("attainment") else "-"
            print(f"  {o.key:<12} {status:<12} {attained} of {percent(o.objective.target)}"
                  f"  [{start}, {end})")
            if o.HasField("error_budget"):
                b = o.error_budget
                print(f"    budget {b.total:g} {b.unit}, spent {b.spent:g},"
                      f" remaining {b.remaining:g}")
            if o.HasField("credit") and o.credit.amount.amount_minor:
                print(f"    credit {o.credit.percent:g} % = {money(o.credit.amount)}")

    step("GetCompliance for the agreement (the service-wide data)")
    show_compliance(compliance.GetCompliance(compliance_pb2.GetComplianceRequest(
        parent=tenant.name, agreement=agreement.name,
    ), timeout=TIMEOUT, metadata=md))

    step("GetCompliance bank on payments (its entitlement: the same data, its own target)")
    show_compliance(compliance.GetCompliance(compliance_pb2.GetComplianceRequest(
        parent=tenant.name,
        pair=compliance_pb2.ConsumerService(consumer=bank.name, service=service.name),
    ), timeout=TIMEOUT, metadata=md))

    step("GetCompliance bank on payments, last month (closed)")
    show_compliance(compliance.GetCompliance(compliance_pb2.GetComplianceRequest(
        parent=tenant.name,
        pair=compliance_pb2.ConsumerService(consumer=bank.name, service=service.name),
        period_containing=ts(last_day),
    ), timeout=TIMEOUT, metadata=md))

    step("GetCreditStatement bank, last month")
    statement = compliance.GetCreditStatement(compliance_pb2.GetCreditStatementRequest(
        parent=tenant.name, consumer=bank.name, period_containing=ts(last_day),
    ), timeout=TIMEOUT, metadata=md)
    for a in statement.agreements:
        print(f"  {a.agreement}  owed by {a.provider}: {money(a.credit)}"
              f" (uncapped {money(a.uncapped)}){'' if a.closed else ' so far'}")
        for o in a.objectives:
            status = enum_name(compliance_pb2.ComplianceStatus, o.status, "COMPLIANCE_STATUS_")
            print(f"    {o.key}: {status}, credit {money(o.credit.amount)}")
    print("  total: " + ", ".join(money(m) for m in statement.totals))

    step("ListBreaches (the period closer found last month's outage)")
    breaches = breach_pb2_grpc.BreachServiceStub(channel)
    deadline = time.monotonic() + 60
    while True:
        listed = breaches.ListBreaches(breach_pb2.ListBreachesRequest(parent=tenant.name),
                                       timeout=TIMEOUT, metadata=md).breaches
        if len(listed) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for b in sorted(listed, key=lambda b: b.consumer):
        state = enum_name(breach_pb2.BreachState, b.state, "BREACH_STATE_")
        start = b.period.start_time.ToDatetime().strftime("%Y-%m-%d")
        who = b.consumer or "every consumer on the base terms"
        print(f"{b.name}  {state}  revision {b.revision}")
        print(f"  {b.objective_key} on {b.service} for {who}, period from {start}:"
              f" {b.attainment * 100:.4f} % of {percent(b.target)},"
              f" credit {money(b.credit.amount)}")
    if len(listed) < 2:
        raise SystemExit("tour: expected two breaches within 60 s")
    channel.close()


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} ADDRESS", file=sys.stderr)
        return 2
    bootstrap_key = os.environ.get("ACCORD_BOOTSTRAP_KEY")
    if not bootstrap_key:
        print("tour: set ACCORD_BOOTSTRAP_KEY to the server's bootstrap key", file=sys.stderr)
        return 2
    try:
        run(sys.argv[1], bootstrap_key)
    except grpc.RpcError as e:
        print(f"\ntour: RPC failed: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    print("\ntour: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
