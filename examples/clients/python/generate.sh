#!/usr/bin/env bash
# Generates the Python messages and gRPC stubs of proto/edgefault/v1/*.proto into DIR (default
# examples/clients/python/gen, which git ignores) with grpcio-tools. Then: gameday.py --gen-dir DIR.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
OUT="${1:-$ROOT/examples/clients/python/gen}"
PYTHON="${PYTHON:-python3}"
WELL_KNOWN="$("$PYTHON" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
mkdir -p "$OUT"
"$PYTHON" -m grpc_tools.protoc -I"$ROOT/proto" -I"$WELL_KNOWN" --python_out="$OUT" --grpc_python_out="$OUT" \
  "$ROOT"/proto/edgefault/v1/*.proto
echo "$OUT"
