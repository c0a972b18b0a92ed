"""Reflection as the official Python client sees it (grpcio-reflection speaks grpc.reflection.v1alpha):
lists the control port's services and the methods of edgefault.v1.FaultControl, as JSON on stdout.

Usage: reflection.py HOST:PORT
"""
import json
import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        pool = DescriptorPool(db)
        control = pool.FindServiceByName("edgefault.v1.FaultControl")
        methods = sorted(m.name for m in control.methods)
        spec = pool.FindMessageTypeByName("edgefault.v1.ExperimentSpec")
        print(json.dumps({"services": services, "methods": methods, "spec_fields": [f.name for f in spec.fields]}))


if __name__ == "__main__":
    main(sys.argv[1])
