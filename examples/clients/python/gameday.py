"""A game day from Python, with the client generated from proto/ by grpcio-tools.

Lists the scenario catalogue and the experiments, starts a 503 abort on one route for a share of its
requests (with a duration and a lease), watches the experiment's events until it has injected a few faults
(renewing the lease meanwhile), reads its stats, stops it, and exits 0. Every step prints one line.

    pip install 'grpcio>=1.60,<2' 'grpcio-tools>=1.60,<2'
    python examples/clients/python/gameday.py --target 127.0.0.1:7070 --route default --percentage 50

The client code is generated at start into --gen-dir (default: a fresh temporary directory) from the
.proto files of the repository (--proto-dir, default proto/ beside examples/). To keep generated code,
run examples/clients/python/generate.sh DIR once and pass --gen-dir DIR.

Auth: with --token-file FILE (or $EDGEFAULT_TOKEN) every call carries `authorization: Bearer <token>`.
TLS: --tls-ca FILE connects over TLS, trusting that CA (docs/clients.md).
"""
import argparse
import importlib
import os
import pathlib
import sys
import tempfile
import time

import grpc

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_PROTO_DIR = HERE.parent.parent.parent / "proto"


def generate(proto_dir: pathlib.Path, out_dir: pathlib.Path) -> None:
    """Runs grpcio-tools' protoc on every .proto of proto_dir into out_dir (messages and gRPC stubs)."""
    from grpc_tools import protoc

    import grpc_tools

    # The well-known types (google/protobuf/duration.proto, …) ship with grpcio-tools.
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.glob("edgefault/v1/*.proto"))
    if not protos:
        sys.exit(f"gameday.py: no edgefault/v1/*.proto under {proto_dir}; pass --proto-dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    if protoc.main(args + protos) != 0:
        sys.exit("gameday.py: protoc failed on the .proto files (see above)")


def load(gen_dir: pathlib.Path):
    """Imports the generated modules: the messages of control.proto and of its imports, and the stub."""
    sys.path.insert(0, str(gen_dir))
    pb = importlib.import_module("edgefault.v1.control_pb2")
    events = importlib.import_module("edgefault.v1.events_pb2")
    experiment = importlib.import_module("edgefault.v1.experiment_pb2")
    scenario = importlib.import_module("edgefault.v1.scenario_pb2")
    safety = importlib.import_module("edgefault.v1.safety_pb2")
    grpc_mod = importlib.import_module("edgefault.v1.control_pb2_grpc")
    return pb, events, experiment, scenario, safety, grpc_mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=os.environ.get("EDGEFAULT_CONTROL", "127.0.0.1:7070"),
                    help="host:port of the control service (an http:// prefix is dropped)")
    ap.add_argument("--token-file", help="file whose first line is the bearer token (else $EDGEFAULT_TOKEN)")
    ap.add_argument("--tls-ca", help="CA certificate (PEM): connect over TLS")
    ap.add_argument("--route", default="default", help="route the experiment targets (match.routes)")
    ap.add_argument("--percentage", type=float, default=50.0)
    ap.add_argument("--duration", type=int, default=120, help="seconds")
    ap.add_argument("--lease", type=int, default=10, help="seconds; the example renews it while it watches")
    ap.add_argument("--injected", type=int, default=3, help="watch until the experiment injected this many")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for them")
    ap.add_argument("--proto-dir", type=pathlib.Path, default=DEFAULT_PROTO_DIR)
    ap.add_argument("--gen-dir", type=pathlib.Path, help="generated code (made here when missing)")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgefault-py-") as scratch:
        gen_dir = a.gen_dir or pathlib.Path(scratch)
        if not (gen_dir / "edgefault" / "v1" / "control_pb2_grpc.py").exists():
            generate(a.proto_dir, gen_dir)
        modules = load(gen_dir)
    return game_day(a, *modules)


def game_day(a, pb, events_pb, exp_pb, scenario_pb, safety_pb, control_grpc) -> int:

    token = None
    if a.token_file:
        token = pathlib.Path(a.token_file).read_text().splitlines()[0].strip()
    elif os.environ.get("EDGEFAULT_TOKEN"):
        token = os.environ["EDGEFAULT_TOKEN"].strip()
    metadata = [("authorization", f"Bearer {token}")] if token else []

    target = a.target.removeprefix("http://").removeprefix("https://")
    if a.tls_ca:
        creds = grpc.ssl_channel_credentials(root_certificates=pathlib.Path(a.tls_ca).read_bytes())
        channel = grpc.secure_channel(target, creds)
    else:
        channel = grpc.insecure_channel(target)
    stub = control_grpc.FaultControlStub(channel)
    def state_name(value):
        return exp_pb.ExperimentState.Name(value).removeprefix("EXPERIMENT_STATE_")

    scenarios = stub.ListScenarios(scenario_pb.ListScenariosRequest(), metadata=metadata, timeout=10)
    names = [s.name for s in scenarios.scenarios]
    print(f"scenarios: {len(names)} ({', '.join(names[:3])}, …)")
    listed = stub.ListExperiments(pb.ListExperimentsRequest(), metadata=metadata, timeout=10)
    print(f"experiments: {len(listed.experiments)}")

    spec = exp_pb.ExperimentSpec(
        name="python-client-503",
        description="started by examples/clients/python/gameday.py",
        match=exp_pb.Match(routes=[a.route]),
        percentage=a.percentage,
        faults=[exp_pb.Fault(abort=exp_pb.AbortFault(http_status=503, page="edge"))],
    )
    spec.duration.FromSeconds(a.duration)
    spec.lease.FromSeconds(a.lease)
    exp = stub.StartExperiment(pb.StartExperimentRequest(spec=spec), metadata=metadata, timeout=10)
    print(f"started {exp.id} {exp.spec.name} {state_name(exp.state)}")

    # Events of this experiment, with a stats snapshot every 200 ms, until it has injected enough.
    watch = events_pb.WatchEventsRequest(experiment_id=exp.id)
    watch.stats_interval.FromMilliseconds(200)
    stream = stub.WatchEvents(watch, metadata=metadata, timeout=a.timeout)
    renewed = time.monotonic()
    injected = 0
    try:
        for event in stream:
            kind = event.WhichOneof("kind")
            if kind == "stats":
                for c in event.stats.experiments:
                    if c.id == exp.id:
                        injected = c.stats.injected
                print(f"event stats: injected {injected}")
            else:
                print(f"event {kind}: {event.experiment_id}")
            if time.monotonic() - renewed > a.lease / 3:
                stub.RenewLease(safety_pb.RenewLeaseRequest(id=exp.id), metadata=metadata, timeout=10)
                renewed = time.monotonic()
                print("lease renewed")
            if injected >= a.injected or kind in ("stopped", "expired", "aborted"):
                break
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        print(f"watch: no {a.injected} injections within {a.timeout}s")
    finally:
        stream.cancel()

    stats = stub.GetStats(events_pb.GetStatsRequest(experiment_id=exp.id), metadata=metadata, timeout=10)
    for c in stats.experiments:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(c.injected_by_kind.items())) or "none"
        print(f"stats {c.id}: matched {c.stats.matched} injected {c.stats.injected} ({kinds})")
    print(f"proxy: passed {stats.proxy.passed} injected {stats.proxy.injected} "
          f"upstream_error {stats.proxy.upstream_error}")

    stopped = stub.StopExperiment(pb.StopExperimentRequest(id=exp.id, reason="python example done"),
                                  metadata=metadata, timeout=10)
    print(f"stopped {stopped.id} {state_name(stopped.state)}")
    channel.close()
    return 0 if injected >= a.injected else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as e:
        sys.exit(f"gameday.py: {e.code().name}: {e.details()}")
