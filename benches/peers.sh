#!/usr/bin/env bash
# fwsim vs unblob, side by side in one run, on multi-partition camera images built by fwsim's own
# writers (examples/synth_image.rs): one camera firmware (a kernel uImage and uImage-wrapped
# squashfs partitions, xz and gzip) as a raw flash dump, a tar.gz update, a plain ZIP and a
# Dahua-style .bin. unblob has no uImage handler (it carves the squashfs and gzip inside) and does
# not read the Dahua .bin (its first signature is DH, not PK): that image is timed for reference,
# its ratio is not a like-for-like comparison.
#
# For each image: hyperfine times `fwsim unpack --json` (release build, in memory) against
# `unblob -e OUTDIR` (which writes to OUTDIR on the same tmpfs); the files both produce are
# compared by SHA-256; fwsim's peak RSS (/usr/bin/time -v) is compared with the unpacked size.
#
# Usage: benches/peers.sh [WORKDIR]     (default: a fresh folder under /dev/shm)
# Needs: hyperfine, GNU time (package `time`), unblob (pip) with 7z (package p7zip-full) and the
# sasquatch stand-in from ../shared/tools (FWSIM_TOOLS overrides), squashfs-tools.
# Knobs: SIZE_PERCENT (generated binaries, default 600), HOST_ELF_MIB (real ELF files taken from
# this machine's /usr/bin and /usr/lib at run time, default 16), RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${1:-$(mktemp -d /dev/shm/fwsim-peers.XXXXXX)}
TOOLS=${FWSIM_TOOLS:-../shared/tools}
SIZE_PERCENT=${SIZE_PERCENT:-600}
HOST_ELF_MIB=${HOST_ELF_MIB:-16}
RUNS=${RUNS:-3}
export PATH="$(cd "$TOOLS" && pwd):$PATH"

for t in hyperfine unblob /usr/bin/time python3; do
    command -v "$t" >/dev/null || { echo "peers.sh: $t is missing" >&2; exit 1; }
done

cargo build --release --quiet --bin fwsim --example synth_image
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
FWSIM=$TARGET/release/fwsim
mkdir -p "$WORK"
elf_dirs=()
for d in /usr/bin /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu; do
    [ -d "$d" ] && elf_dirs+=(--host-elfs "$d")
done
"$TARGET/release/examples/synth_image" "$WORK" --size-percent "$SIZE_PERCENT" \
    --host-elf-mib "$HOST_ELF_MIB" "${elf_dirs[@]}"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "tools: $(unblob --version 2>&1 | tail -1) (unblob), $(hyperfine --version)"

for img in ${IMAGES:-flash.bin update.tgz camera.zip camera.bin}; do
    echo
    echo "== $img ($(stat -c %s "$WORK/$img") bytes)"
    out="$WORK/unblob-$img"
    hyperfine --warmup 1 --runs "$RUNS" --style basic \
        --export-json "$WORK/$img.hyperfine.json" \
        -n fwsim "$FWSIM unpack --json --quiet $WORK/$img > /dev/null" \
        -n unblob --prepare "rm -rf $out" "unblob --log $WORK/unblob.log -e $out $WORK/$img > /dev/null 2>&1"
    # The listing and peak memory of one more fwsim run; unblob's output of its last timed run.
    /usr/bin/time -v "$FWSIM" unpack --json --quiet "$WORK/$img" \
        > "$WORK/$img.jsonl" 2> "$WORK/$img.time"
    python3 - "$WORK/$img" "$out" <<'PY'
import hashlib, json, os, sys
img, out = sys.argv[1], sys.argv[2]
bench = json.load(open(img + ".hyperfine.json"))["results"]
t = {r["command"]: r["mean"] for r in bench}
print(f"speed: fwsim {t['fwsim']:.3f} s, unblob {t['unblob']:.3f} s -> fwsim is {t['unblob'] / t['fwsim']:.1f}x faster")

entries = [json.loads(l) for l in open(img + ".jsonl")]
parents = {e["path"].rsplit("/", 1)[0] for e in entries}
files = [e for e in entries if e["kind"] == "file" and not e.get("error")]
# fwsim's final files: regular files that nothing was unpacked from.
leaves = [e for e in files if e["path"] not in parents]
unpacked = sum(e["size"] for e in leaves)
rss_kib = next(int(l.split(":")[1]) for l in open(img + ".time") if "Maximum resident" in l)
print(f"memory: fwsim peak RSS {rss_kib / 1024:.1f} MiB; unpacked size (final files) {unpacked / 2**20:.1f} MiB; "
      f"limit unpacked + 256 MiB = {unpacked / 2**20 + 256:.1f} MiB -> {'OK' if rss_kib * 1024 < unpacked + (256 << 20) else 'OVER'}")

fw_all = {e["sha256"]: e["path"] for e in files}
fw = {e["sha256"]: e["path"] for e in leaves}
ub, ub_chunks = {}, {}
for root, dirs, names in os.walk(out):
    for f in names:
        p = os.path.join(root, f)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        h = hashlib.sha256(open(p, "rb").read()).hexdigest()
        rel = os.path.relpath(p, out)
        # unblob keeps every carved chunk as a file beside its extraction; fwsim lists those as
        # containers (not final files) and unclaimed stretches as gaps.
        if f.endswith((".unknown", ".padding")) or os.path.isdir(p + "_extract"):
            ub_chunks.setdefault(h, rel)
        else:
            ub.setdefault(h, rel)
print(f"files: fwsim {len(fw)} distinct final files, unblob {len(ub)} (+{len(ub_chunks)} chunk files)")
print(f"  fwsim's final files that unblob also wrote: {len(fw.keys() & ub.keys())} of {len(fw)}")
print(f"  unblob's files that fwsim also lists: {len(ub.keys() & fw_all.keys())} of {len(ub)}")
only_fw = [fw[h] for h in fw.keys() - ub.keys() - ub_chunks.keys()]
only_ub = [ub[h] for h in ub.keys() - fw_all.keys()]
for name, lst in (("only fwsim", only_fw), ("only unblob", only_ub)):
    print(f"  {name}: {len(lst)}" + "".join(f"\n    {p}" for p in sorted(lst)[:10]))
PY
done
echo
echo "work folder: $WORK"
