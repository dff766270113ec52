#!/usr/bin/env bash
# Builds every fuzz target with cargo-fuzz on the stable toolchain (RUSTC_BOOTSTRAP=1, no
# sanitizer: the code under test has no `unsafe`), seeds the corpora, then runs each target for
# SECONDS (default 20), two at a time, and prints the executions of each.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (FWSIM=path/to/fwsim to use a built binary)
#
# Seeds (written to fuzz/corpus/, which git ignores; nothing is copied into the repository): the
# real samples of at most 1 MiB ($FWSIM_REALDATA, else ../shared/realdata beside the checkout),
# the demo camera image built by `fwsim demo`, fingerprints of both, and their ssdeep/TLSH
# digests. A crash is kept in fuzz/artifacts/TARGET/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

SECS="${1:-20}"
shift || true
# The default toolchain (stable on CI; RUSTC_BOOTSTRAP lets cargo-fuzz use its -Z flags).
FUZZ=(cargo fuzz)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <("${FUZZ[@]}" list)
fi

log() { printf '\n==> %s\n' "$*"; }

log "build (${TARGETS[*]})"
"${FUZZ[@]}" build -s none

log "seed corpora"
REALDATA="${FWSIM_REALDATA:-../../shared/realdata}"
# fwsim itself builds the seeds: $FWSIM, else the top-level debug build (built without
# RUSTC_BOOTSTRAP, which would make cargo rebuild it from scratch).
if [ -z "${FWSIM:-}" ]; then
    (cd .. && env -u RUSTC_BOOTSTRAP cargo build --quiet --locked)
    FWSIM="$(cd .. && pwd)/target/debug/fwsim"
fi
SEEDS="$(mktemp -d)"
trap 'rm -rf "$SEEDS"' EXIT
"$FWSIM" demo --quiet --keep "$SEEDS/demo" >/dev/null
images=("$SEEDS"/demo/*)
if [ -f "$REALDATA/SOURCES.tsv" ]; then
    while IFS= read -r -d '' f; do images+=("$f"); done \
        < <(find "$REALDATA" -type f ! -name SOURCES.tsv -size -1025k -print0)
else
    echo "no real samples at $REALDATA: seeding from the demo image only" >&2
fi
mkdir -p corpus/{format,unpack,elf,evidence,ssdeep,tlsh,fingerprint_json}
n=0
for f in "${images[@]}"; do
    n=$((n + 1))
    name="seed-$n"
    cp "$f" "corpus/format/$name"
    cp "$f" "corpus/unpack/$name"
    if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
        cp "$f" "corpus/elf/$name"
    fi
    if [ "$(stat -c %s "$f")" -le 262144 ]; then
        cp "$f" "corpus/evidence/$name"
    fi
done
# Digests, a few per seed file (pairs of lines are compared by the targets).
"$FWSIM" hash --quiet "${images[@]:0:20}" 2>/dev/null | awk '{ print $2 > "'"$SEEDS"'/ssdeep"; print $3 > "'"$SEEDS"'/tlsh" }' || true
split -l 4 "$SEEDS/ssdeep" corpus/ssdeep/seed-
split -l 4 "$SEEDS/tlsh" corpus/tlsh/seed-
# Fingerprints: the demo image and the first real samples that unpack into something.
for f in "${images[@]:0:4}"; do
    "$FWSIM" fingerprint --quiet "$f" -o "corpus/fingerprint_json/$(basename "$f").json" || true
done
echo "seeded from ${#images[@]} images"

log "run each target for ${SECS} s, two at a time"
LOGS="$SEEDS/logs"
mkdir -p "$LOGS"
status=0
run() {
    "${FUZZ[@]}" run -s none "$1" -- -max_total_time="$SECS" -timeout=30 -rss_limit_mb=3072 \
        -max_len=1048576 -print_final_stats=1 >"$LOGS/$1.log" 2>&1
}
i=0
while [ "$i" -lt "${#TARGETS[@]}" ]; do
    pids=()
    for t in "${TARGETS[@]:$i:2}"; do
        run "$t" &
        pids+=("$!:$t")
    done
    for p in "${pids[@]}"; do
        t="${p#*:}"
        if wait "${p%%:*}"; then
            runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$LOGS/$t.log" | grep -Eo '[0-9]+$' || echo '?')
            echo "fuzz $t: ${runs} executions in ${SECS} s, no crash"
        else
            echo "fuzz $t: FAILED (see below; the input is in fuzz/artifacts/$t/)" >&2
            tail -40 "$LOGS/$t.log" >&2
            status=1
        fi
    done
    i=$((i + 2))
done
exit "$status"
