"""The controller as the official Python gRPC client sees it: the messages come from the server's
reflection (grpcio-reflection, v1alpha), nothing generated from our protos. Lists the sidecars, starts an
experiment with a label selector, reads it back, ends everything, and reads the fleet's history (the
sidecars' seconds added up); prints what it saw as JSON.

Usage: fleet.py HOST:PORT TOKEN LABEL_KEY LABEL_VALUE
"""
import json
import sys
import time

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICE = "edgefault.v1.FaultControl"


def main(target: str, token: str, key: str, value: str) -> None:
    with grpc.insecure_channel(target) as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        service = pool.FindServiceByName(SERVICE)

        def call(method: str, body: dict) -> dict:
            m = service.methods_by_name[method]
            request, response = GetMessageClass(m.input_type), GetMessageClass(m.output_type)
            rpc = channel.unary_unary(
                f"/{SERVICE}/{method}",
                request_serializer=lambda msg: msg.SerializeToString(),
                response_deserializer=response.FromString,
            )
            reply = rpc(json_format.ParseDict(body, request()), metadata=[("authorization", f"Bearer {token}")])
            return json_format.MessageToDict(reply, preserving_proto_field_name=True)

        sidecars = call("ListSidecars", {}).get("sidecars", [])
        spec = {
            "name": "python fleet",
            "duration": "60s",
            "sidecars": {"match_labels": {key: value}},
            "faults": [{"abort": {"http_status": 503}}],
        }
        started = call("StartExperiment", {"spec": spec})
        got = call("GetExperiment", {"id": started["id"]})
        aborted = call("AbortAll", {"reason": "python"})
        # Each sidecar reports its seconds once they are closed: wait up to 10 s for the first ones.
        deadline = time.monotonic() + 10
        while True:
            history = call("GetHistory", {"resolution": "HISTORY_RESOLUTION_SECOND"})
            if history.get("routes") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        print(json.dumps({
            "sidecars": sorted(s["id"] for s in sidecars),
            "labels": {s["id"]: s.get("labels", {}) for s in sidecars},
            "id": started["id"],
            "targets": sorted(t["sidecar_id"] for t in got.get("sidecars", [])),
            "aborted": aborted.get("count", 0),
            "history_resolution": history.get("resolution_seconds", 0),
            "history_routes": sorted({f"{r['listener']}/{r['route']}" for r in history.get("routes", [])}),
        }))


if __name__ == "__main__":
    main(*sys.argv[1:5])
