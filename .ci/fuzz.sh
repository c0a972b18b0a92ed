#!/usr/bin/env bash
# Bounded fuzzing for CI: every target of fuzz/ (cargo-fuzz, libFuzzer) runs for FUZZ_SECONDS (default 60)
# on one job, from a copy of its committed seed corpus (so a run never grows fuzz/corpus/). Fails when a
# target finds a crash (libFuzzer exits non-zero); the crashing input is kept in fuzz/artifacts/<target>/.
#
# Works on the stable toolchain: cargo-fuzz needs nightly flags (-Zsanitizer, …), which RUSTC_BOOTSTRAP=1
# lets stable accept. Installs cargo-fuzz (--locked) into the normal cargo bin when it is missing.
#
#   bash .ci/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=10 bash .ci/fuzz.sh page_render request_path
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
export CARGO_TERM_COLOR=never
export RUSTC_BOOTSTRAP=1

seconds="${FUZZ_SECONDS:-60}"

step() { printf '\n=== %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    step "cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

step "cargo fuzz build (${targets[*]})"
for target in "${targets[@]}"; do
    cargo fuzz build "$target"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
    step "cargo fuzz run $target (${seconds}s, one job, corpus copy in $work/$target)"
    mkdir -p "$work/$target"
    cp -R "corpus/$target/." "$work/$target/"
    # libFuzzer prints a line per new input; the log keeps them, CI shows the end of it.
    if cargo fuzz run "$target" "$work/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$work/$target.log" 2>&1; then
        grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$work/$target.log" || true
    else
        tail -n 60 "$work/$target.log"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nfuzzing found crashes in: %s (inputs in fuzz/artifacts/<target>/)\n' "${failed[*]}" >&2
    exit 1
fi
printf '\nfuzzing: %s ran %ss each without a crash\n' "${targets[*]}" "$seconds"
