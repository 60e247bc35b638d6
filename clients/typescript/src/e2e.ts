// End-to-end check of the TypeScript client (protobuf-es + Connect-ES over
// gRPC) against a real Accord server.
//
//   node dist/e2e.js ADDRESS        (ACCORD_BOOTSTRAP_KEY set)
//
// In a tenant of its own (a fresh random id, so it can run again on the same
// server):
// 1. health: grpc.health.v1 Check("") answers SERVING (waits up to 30 s);
// 2. creates, with the bootstrap key, the tenant and a TENANT_ADMIN key, and
//    with that key a provider and a customer, a service, and a SERVICE_LEVEL
//    agreement with one objective, which it publishes (ACTIVE);
// 3. resolves the customer's entitlement on the service: the objective,
//    traced to the agreement's revision;
// 4. reports two measurements: one accepted, one rejected UNKNOWN_INDICATOR;
// 5. makes a call the server refuses (a party id with capitals) and reads the
//    error's details: INVALID_ARGUMENT with a BadRequest field violation on
//    party_id and ErrorInfo(reason INVALID_ARGUMENT, domain accord).
// Prints what it checked; exits 1 at the first difference, 2 on bad usage.

import { randomBytes, randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";

import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { AgreementKind, AgreementService, AgreementState } from "./gen/accord/v1/agreement_pb.js";
import { ApiKeyService, Role } from "./gen/accord/v1/api_key_pb.js";
import { EntitlementService } from "./gen/accord/v1/entitlement_pb.js";
import { MeasurementService } from "./gen/accord/v1/measurement_pb.js";
import { PartyKind, PartyService, type Party } from "./gen/accord/v1/party_pb.js";
import { ServiceCatalogService } from "./gen/accord/v1/service_pb.js";
import { TenantService } from "./gen/accord/v1/tenant_pb.js";
import { ObjectiveKind } from "./gen/accord/v1/terms_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";

const TIMEOUT_MS = 10_000; // for each call
const HEALTH_WAIT_MS = 30_000; // for the server to turn SERVING

class Mismatch extends Error {}

/** JSON, with int64 values (bigint) as numbers. */
function show(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? Number(v) : v));
}

function expect(what: string, got: unknown, want: unknown): void {
  if (!isDeepStrictEqual(got, want)) {
    throw new Mismatch(`${what}: got ${show(got)}, want ${show(want)}`);
  }
  console.log(`  ok  ${what} = ${show(got)}`);
}

/** Sends `authorization: Bearer <secret>` on every call of a transport. */
function bearer(secret: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${secret}`);
    return next(req);
  };
}

/** A gRPC (HTTP/2, plaintext) transport to `address`, calling with `secret`. */
function transport(address: string, secret?: string) {
  return createGrpcTransport({
    baseUrl: `http://${address}`,
    defaultTimeoutMs: TIMEOUT_MS,
    interceptors: secret === undefined ? [] : [bearer(secret)],
  });
}

async function waitServing(address: string): Promise<void> {
  const health = createClient(Health, transport(address));
  const deadline = Date.now() + HEALTH_WAIT_MS;
  for (;;) {
    let last: string;
    try {
      const response = await health.check({ service: "" });
      if (response.status === HealthCheckResponse_ServingStatus.SERVING) {
        break;
      }
      last = HealthCheckResponse_ServingStatus[response.status];
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code !== Code.Unavailable) {
        throw err;
      }
      last = `UNAVAILABLE: ${err.rawMessage}`;
    }
    if (Date.now() > deadline) {
      throw new Mismatch(`health: not SERVING after ${HEALTH_WAIT_MS / 1000} s (${last})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  expect('health Check("")', "SERVING", "SERVING");
}

async function run(address: string, bootstrapKey: string): Promise<void> {
  console.log("1. health");
  await waitServing(address);

  console.log("2. create");
  const platform = transport(address, bootstrapKey);
  const tenantId = `e2e-ts-${randomBytes(4).toString("hex")}`;
  const tenant = await createClient(TenantService, platform).createTenant({
    tenantId,
    tenant: { displayName: "TypeScript e2e" },
    requestId: randomUUID(),
  });
  expect("tenant.name", tenant.name, `tenants/${tenantId}`);

  const createdKey = await createClient(ApiKeyService, platform).createApiKey({
    parent: tenant.name,
    apiKeyId: "admin",
    apiKey: { displayName: "e2e admin", role: Role.TENANT_ADMIN },
    requestId: randomUUID(),
  });
  expect("apiKey.role", Role[createdKey.apiKey?.role ?? Role.UNSPECIFIED], "TENANT_ADMIN");
  const admin = transport(address, createdKey.secret);
  const parties = createClient(PartyService, admin);

  async function party(partyId: string, kind: PartyKind): Promise<Party> {
    const created = await parties.createParty({
      parent: tenant.name,
      partyId,
      party: { displayName: partyId, kind },
      requestId: randomUUID(),
    });
    expect(`party ${partyId}`, created.name, `${tenant.name}/parties/${partyId}`);
    return created;
  }
  const provider = await party("platform", PartyKind.PROVIDER);
  const customer = await party("bank", PartyKind.CUSTOMER);

  const service = await createClient(ServiceCatalogService, admin).createService({
    parent: tenant.name,
    serviceId: "payments",
    service: { displayName: "Payments", owner: provider.name },
    requestId: randomUUID(),
  });
  expect("service.owner", service.owner, provider.name);

  const agreements = createClient(AgreementService, admin);
  let agreement = await agreements.createAgreement({
    parent: tenant.name,
    agreementId: "payments-sla",
    agreement: {
      displayName: "Payments SLA",
      kind: AgreementKind.SERVICE_LEVEL,
      provider: provider.name,
      services: [service.name],
      effectiveFrom: timestampFromDate(new Date("2026-01-01T00:00:00Z")),
      objectives: [
        {
          key: "availability",
          displayName: "Availability",
          indicator: "http_success",
          kind: ObjectiveKind.RATIO,
          target: 0.999,
          window: {
            window: { case: "rolling", value: { duration: { seconds: BigInt(30 * 86400) } } },
          },
        },
      ],
    },
    requestId: randomUUID(),
  });
  expect("agreement.state", AgreementState[agreement.state], "DRAFT");
  agreement = await agreements.publishAgreement({ name: agreement.name, etag: agreement.etag });
  expect("published agreement.state", AgreementState[agreement.state], "ACTIVE");

  console.log("3. resolve");
  const entitlement = await createClient(EntitlementService, admin).resolveEntitlement({
    parent: tenant.name,
    consumer: customer.name,
    service: service.name,
  });
  expect(
    "objectives",
    entitlement.objectives.map((o) => o.objective?.key),
    ["availability"],
  );
  const [objective] = entitlement.objectives;
  expect("objective target", objective?.objective?.target, 0.999);
  expect("provenance agreement", objective?.provenance?.agreement, agreement.name);
  expect("provenance revision", objective?.provenance?.revisionId, agreement.revisionId);
  if (entitlement.version === "") {
    throw new Mismatch("entitlement.version is empty");
  }

  console.log("4. report");
  const now = timestampFromDate(new Date(Math.floor(Date.now() / 1000) * 1000));
  const report = await createClient(MeasurementService, admin).reportMeasurements({
    parent: tenant.name,
    measurements: [
      {
        id: "ts-requests-1",
        service: service.name,
        indicator: "http_success",
        time: now,
        value: { case: "counts", value: { good: 999n, total: 1000n } },
      },
      {
        id: "ts-latency-1",
        service: service.name,
        indicator: "latency_p99",
        time: now,
        value: { case: "sample", value: { value: 0.2 } },
      },
    ],
  });
  expect("accepted", report.accepted, 1n);
  expect("duplicates", report.duplicates, 0n);
  expect(
    "rejections",
    report.rejections.map((r) => [r.index, r.id, r.reason]),
    [[1, "ts-latency-1", "UNKNOWN_INDICATOR"]],
  );

  console.log("5. error details");
  let refused: ConnectError | undefined;
  try {
    await parties.createParty({
      parent: tenant.name,
      partyId: "Not-Valid",
      party: { displayName: "Bad id", kind: PartyKind.CUSTOMER },
    });
  } catch (e) {
    refused = ConnectError.from(e);
  }
  if (refused === undefined) {
    throw new Mismatch("CreateParty with party_id 'Not-Valid' succeeded");
  }
  expect("code", Code[refused.code], "InvalidArgument");
  // Connect decodes grpc-status-details-bin (a google.rpc.Status) into
  // refused.details; findDetails unpacks those of one type.
  const [badRequest] = refused.findDetails(BadRequestSchema);
  if (badRequest === undefined) {
    const types = refused.details.map((d) => ("type" in d ? d.type : d.desc.typeName));
    throw new Mismatch(`no BadRequest in the details (${types.join(", ") || "none"})`);
  }
  expect(
    "violations",
    badRequest.fieldViolations.map((v) => v.field),
    ["party_id"],
  );
  console.log(`      (${badRequest.fieldViolations[0]?.description})`);
  const [info] = refused.findDetails(ErrorInfoSchema);
  expect("ErrorInfo", [info?.reason, info?.domain], ["INVALID_ARGUMENT", "accord"]);
}

async function main(): Promise<number> {
  const [address, ...rest] = process.argv.slice(2);
  if (address === undefined || rest.length > 0) {
    console.error("usage: node dist/e2e.js ADDRESS");
    return 2;
  }
  const bootstrapKey = process.env.ACCORD_BOOTSTRAP_KEY;
  if (!bootstrapKey) {
    console.error("e2e: set ACCORD_BOOTSTRAP_KEY to the server's bootstrap key");
    return 2;
  }
  try {
    await run(address, bootstrapKey);
  } catch (e) {
    if (e instanceof Mismatch) {
      console.error(`e2e: FAIL: ${e.message}`);
    } else if (e instanceof ConnectError) {
      console.error(`e2e: FAIL: RPC failed: ${Code[e.code]}: ${e.rawMessage}`);
    } else {
      console.error("e2e: FAIL:", e);
    }
    return 1;
  }
  console.log("e2e: typescript OK");
  return 0;
}

process.exitCode = await main();
