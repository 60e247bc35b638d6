#!/usr/bin/env python3
"""Checks a running Accord server through the standard gRPC services only.

    python check_server.py [--timeout SECONDS] ADDRESS

1. server reflection (v1alpha, the version most tools still speak) lists the
   accord.v1 services, and serves their descriptors with every file they
   import, so a client such as grpcurl can call them without the .proto files;
2. grpc.health.v1 reports SERVING for the server ("") and for each of them.

Waits up to --timeout seconds (default 30) for the server to come up and turn
SERVING. Prints a short report; exits 1 with the reason on any failure.
"""

import argparse
import sys
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

ACCORD_SERVICES = (
    "accord.v1.TenantService",
    "accord.v1.ApiKeyService",
    "accord.v1.AuditService",
    "accord.v1.PartyService",
    "accord.v1.ServiceCatalogService",
    "accord.v1.AgreementService",
    "accord.v1.EntitlementService",
    "accord.v1.MeasurementService",
    "accord.v1.BreachService",
    "accord.v1.ComplianceService",
)
RPC_TIMEOUT = 5.0  # seconds, for each call


class CheckFailed(Exception):
    """A check that ran and got a wrong answer: retrying will not help."""


class NotReady(Exception):
    """The server is not (yet) up or not (yet) SERVING: worth retrying."""


def list_services(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = stub.ServerReflectionInfo(iter([request]), timeout=RPC_TIMEOUT)
    for response in responses:
        which = response.WhichOneof("message_response")
        if which == "error_response":
            err = response.error_response
            raise CheckFailed(
                f"reflection v1alpha list_services returned error "
                f"{err.error_code}: {err.error_message}"
            )
        if which != "list_services_response":
            raise CheckFailed(f"reflection v1alpha list_services answered with {which!r}")
        return sorted(s.name for s in response.list_services_response.service)
    raise CheckFailed("reflection v1alpha list_services: the stream ended with no response")


def reflect(stub, request):
    """One v1alpha reflection request on its own stream, with a deadline."""
    for response in stub.ServerReflectionInfo(iter([request]), timeout=RPC_TIMEOUT):
        if response.WhichOneof("message_response") == "error_response":
            err = response.error_response
            raise CheckFailed(f"reflection v1alpha {request.WhichOneof('message_request')} "
                              f"{getattr(request, request.WhichOneof('message_request'))!r}: "
                              f"error {err.error_code}: {err.error_message}")
        return response
    raise CheckFailed("reflection v1alpha: the stream ended with no response")


def resolve_service(channel, service):
    """Fetches the file defining `service` and its imports through reflection
    and returns the service's descriptor, as a reflection-only client would."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    files = {}

    def add(response):
        for raw in response.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(fd.name, fd)

    add(reflect(stub, reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)))
    if not files:
        raise CheckFailed(f"reflection v1alpha returned no file for {service}")
    pending = [dep for fd in files.values() for dep in fd.dependency]
    while pending:
        name = pending.pop()
        if name in files:
            continue
        add(reflect(stub, reflection_pb2.ServerReflectionRequest(file_by_filename=name)))
        if name not in files:
            raise CheckFailed(f"reflection v1alpha did not return {name}, imported by {service}")
        pending += files[name].dependency

    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add_to_pool(name):
        if name not in added:
            for dep in files[name].dependency:
                add_to_pool(dep)
            pool.Add(files[name])
            added.add(name)

    try:
        for name in files:
            add_to_pool(name)
        return pool.FindServiceByName(service)
    except (KeyError, TypeError) as e:
        raise CheckFailed(
            f"reflection v1alpha descriptors for {service} do not resolve: {e}"
        ) from e


def health(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def run_checks(channel):
    """Returns the report lines; raises NotReady or CheckFailed."""
    lines = []
    try:
        services = list_services(channel)
    except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise NotReady(f"reflection: {e.code().name}: {e.details()}") from e
        raise CheckFailed(f"reflection v1alpha ServerReflectionInfo failed: "
                          f"{e.code().name}: {e.details()}") from e
    missing = [s for s in ACCORD_SERVICES if s not in services]
    if missing:
        raise CheckFailed(
            f"reflection v1alpha does not list {', '.join(missing)} "
            f"(it lists: {', '.join(services) or 'nothing'})"
        )
    lines.append(f"reflection v1alpha lists {len(services)} services:")
    lines += [f"  {s}" for s in services]

    lines.append("reflection v1alpha descriptors (with their imports):")
    for service in ACCORD_SERVICES:
        try:
            desc = resolve_service(channel, service)
        except grpc.RpcError as e:
            raise CheckFailed(f"reflection v1alpha descriptors for {service}: "
                              f"{e.code().name}: {e.details()}") from e
        if not desc.methods:
            raise CheckFailed(f"reflection v1alpha: {service} has no methods")
        lines.append(f"  {service}: {len(desc.methods)} methods, from {desc.file.name}")

    lines.append("health (grpc.health.v1.Health/Check):")
    for service in ("",) + ACCORD_SERVICES:
        label = service or '"" (server)'
        try:
            status = health(channel, service)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise NotReady(f"health {label}: {e.code().name}: {e.details()}") from e
            raise CheckFailed(f"health Check {label} failed: {e.code().name}: {e.details()}") from e
        if status != "SERVING":
            # NOT_SERVING can be a server still starting; the caller retries.
            raise NotReady(f"health {label} is {status}, not SERVING")
        lines.append(f"  {label}: {status}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="host:port of the Accord server, e.g. 127.0.0.1:50051")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the server to be up and SERVING (default 30)")
    args = parser.parse_args()

    deadline = time.monotonic() + args.timeout
    last = None
    with grpc.insecure_channel(args.address) as channel:
        while True:
            try:
                lines = run_checks(channel)
                break
            except NotReady as e:
                last = e
            except CheckFailed as e:
                print(f"check_server: FAIL ({args.address}): {e}", file=sys.stderr)
                return 1
            if time.monotonic() >= deadline:
                print(f"check_server: FAIL ({args.address}): not ready after "
                      f"{args.timeout:g}s: {last}", file=sys.stderr)
                return 1
            time.sleep(0.5)

    print(f"check_server: {args.address}")
    for line in lines:
        print(line)
    print("check_server: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
