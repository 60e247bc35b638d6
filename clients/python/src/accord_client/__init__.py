"""Python client for Accord, the multi-tenant SLA registry.

The stubs for every service of proto/accord/v1 are in ``accord_client.v1``
(generated when the package is built: ``tenant_pb2``, ``tenant_pb2_grpc``,
...). This module adds what every caller needs around them:

- :func:`bearer`: the call metadata that carries an API key;
- :func:`status` and :func:`find_detail`: the ``google.rpc.Status`` of a failed
  call and its details (``ErrorInfo``, ``BadRequest``, ``ResourceInfo``, ...),
  decoded from the ``grpc-status-details-bin`` trailer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

__all__ = ["bearer", "status", "find_detail", "details"]

_DETAILS_KEY = "grpc-status-details-bin"

M = TypeVar("M", bound=Message)


def bearer(secret: str) -> tuple[tuple[str, str]]:
    """The metadata for a call made with the API key `secret`:
    ``stub.GetTenant(request, metadata=bearer(secret))``."""
    return (("authorization", f"Bearer {secret}"),)


def status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status a failed call carries in its trailers, or None
    when it has none (an error from the gRPC library rather than Accord).

    `error` is what a unary call or a stream raises: a grpc.RpcError that is
    also a grpc.Call."""
    if not isinstance(error, grpc.Call):
        return None
    trailers: Sequence[tuple[str, str | bytes]] = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == _DETAILS_KEY:
            if not isinstance(value, bytes):
                raise ValueError(f"{_DETAILS_KEY} is not binary: {value!r}")
            return status_pb2.Status.FromString(value)
    return None


def details(error: grpc.RpcError) -> list[str]:
    """The type names of the details of a failed call (e.g. google.rpc.ErrorInfo)."""
    found = status(error)
    return [] if found is None else [d.TypeName() for d in found.details]


def find_detail(error: grpc.RpcError, kind: type[M]) -> M | None:
    """The first detail of type `kind` (e.g. error_details_pb2.BadRequest) of a
    failed call, unpacked, or None."""
    found = status(error)
    if found is None:
        return None
    name = kind.DESCRIPTOR.full_name
    for detail in found.details:
        if detail.TypeName() == name:
            message = kind()
            detail.Unpack(message)
            return message
    return None
