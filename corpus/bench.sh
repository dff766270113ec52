#!/usr/bin/env bash
# The accuracy benchmark in one command: builds the reference corpus (cached), scores every pair
# with `fwsim matrix --json` when this fwsim has it, and prints the report (fwsim beside the
# whole-image ssdeep, whole-image TLSH and identical-files baselines, then the real samples),
# after the decision thresholds fitted on split `fit` (`fwsim-corpus fit`, for comparison with
# the defaults in src/compare/thresholds.rs; the full configuration only).
# Usage: corpus/bench.sh [small|full]
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-full}"
out="target/refcorpus/$config"
cargo run -q --profile test -p fwsim-corpus -- build --config "$config" --out "$out"
scores=()
if cargo run -q --profile test --bin fwsim -- matrix --help >/dev/null 2>&1; then
    cargo run -q --profile test --bin fwsim -- --quiet matrix --json "$out/images" >"$out/matrix.json"
    scores=(--scores "$out/matrix.json" --fwsim target/debug/fwsim)
    if [ "$config" = full ]; then
        cargo run -q --profile test -p fwsim-corpus -- fit --corpus "$out" --scores "$out/matrix.json"
        echo
    fi
else
    echo "fwsim has no matrix command yet: baselines only" >&2
fi
cargo run -q --profile test -p fwsim-corpus -- bench --corpus "$out" "${scores[@]}" \
    --realdata "${FWSIM_REALDATA:-../shared/realdata}"
