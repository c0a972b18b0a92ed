"""A unary gRPC call as the official Python client (grpcio) makes it, with the metadata given: prints the
call's status code as JSON on stdout. The call is grpc.health.v1.Health/Check for service "checkout",
sent as raw bytes, so no generated code (or grpcio-health-checking) is needed.

Usage: grpc_fault_headers.py HOST:PORT [KEY=VALUE ...]
"""
import json
import sys

import grpc

# HealthCheckRequest { service: "checkout" }: field 1, length-delimited.
REQUEST = b"\x0a\x08checkout"


def main(target: str, pairs: list) -> None:
    metadata = [tuple(p.split("=", 1)) for p in pairs]
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            check(REQUEST, metadata=metadata, timeout=10)
            print(json.dumps({"code": "OK"}))
        except grpc.RpcError as e:
            print(json.dumps({"code": e.code().name, "details": e.details()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
