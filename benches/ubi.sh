#!/usr/bin/env bash
# fwsim vs ubi_reader, side by side in one run, on a NAND-style UBI image built by fwsim's own
# writers (examples/ubi_image.rs): one dynamic UBIFS volume (LZO, 128 KiB PEBs, 2 KiB pages)
# holding the partition trees of a generated camera firmware plus real ELF files copied at run time
# from this machine's /usr/bin and /usr/lib.
#
# hyperfine times `fwsim unpack --out DIR` (release build; writes every file, recursively) against
# `ubireader_extract_files -o DIR`, both writing to the same tmpfs; then every file ubi_reader wrote
# is looked up in fwsim's output by path and SHA-256.
#
# Usage: benches/ubi.sh [WORKDIR]     (default: a fresh folder under /dev/shm)
# Needs: hyperfine, python3, ubi_reader (pip install ubi_reader).
# Knobs: SIZE_PERCENT (generated files, default 600), HOST_ELF_MIB (default 72: the image must
# reach 64 MiB), COMPRESSION (lzo, zlib, zstd or none; default lzo), RUNS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${1:-$(mktemp -d /dev/shm/fwsim-ubi.XXXXXX)}
SIZE_PERCENT=${SIZE_PERCENT:-600}
HOST_ELF_MIB=${HOST_ELF_MIB:-72}
COMPRESSION=${COMPRESSION:-lzo}
RUNS=${RUNS:-5}

for t in hyperfine ubireader_extract_files python3; do
    command -v "$t" >/dev/null || { echo "ubi.sh: $t is missing" >&2; exit 1; }
done

cargo build --release --quiet --bin fwsim --example ubi_image
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
FWSIM=$TARGET/release/fwsim
mkdir -p "$WORK"
elf_dirs=()
for d in /usr/bin /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu; do
    [ -d "$d" ] && elf_dirs+=(--host-elfs "$d")
done
IMG=$WORK/nand.ubi
"$TARGET/release/examples/ubi_image" "$IMG" --size-percent "$SIZE_PERCENT" \
    --host-elf-mib "$HOST_ELF_MIB" --compression "$COMPRESSION" "${elf_dirs[@]}"
size=$(stat -c %s "$IMG")
if [ "$size" -lt $((64 << 20)) ]; then
    echo "ubi.sh: image is only $size bytes; raise HOST_ELF_MIB" >&2
    exit 1
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "tools: ubi_reader $(python3 -c 'import importlib.metadata as m; print(m.version("ubi_reader"))'), $(hyperfine --version)"
echo "image: $IMG ($size bytes, $COMPRESSION)"

FW_OUT=$WORK/fwsim-out
UB_OUT=$WORK/ubireader-out
hyperfine --warmup 1 --runs "$RUNS" --style basic --export-json "$WORK/ubi.hyperfine.json" \
    -n fwsim --prepare "rm -rf $FW_OUT" "$FWSIM unpack --quiet --out $FW_OUT $IMG > /dev/null" \
    -n ubi_reader --prepare "rm -rf $UB_OUT" "ubireader_extract_files -o $UB_OUT $IMG > /dev/null 2>&1"

python3 - "$WORK" <<'PY'
import hashlib, json, os, sys
work = sys.argv[1]
t = {r["command"]: r for r in json.load(open(os.path.join(work, "ubi.hyperfine.json")))["results"]}
fw, ub = t["fwsim"], t["ubi_reader"]
print(f"speed: fwsim {fw['median']:.3f} s (user {fw['user']:.2f} s), ubi_reader {ub['median']:.3f} s "
      f"(user {ub['user']:.2f} s) -> fwsim is {ub['median'] / fw['median']:.1f}x faster (medians)")

def files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out

# ubi_reader writes <image_seq>/<volume>/...; fwsim writes the volume as `rootfs` and its files
# under `rootfs.extracted/` (and, beside them, whatever it found inside those files).
ub_root = os.path.join(work, "ubireader-out")
seq = os.listdir(ub_root)[0]
theirs = files(os.path.join(ub_root, seq, "rootfs"))
ours = files(os.path.join(work, "fwsim-out", "rootfs.extracted"))
same = sum(1 for p, h in theirs.items() if ours.get(p) == h)
print(f"files: ubi_reader wrote {len(theirs)}; fwsim wrote the same path and SHA-256 for {same}")
for p in sorted(p for p in theirs if ours.get(p) != theirs[p])[:10]:
    print(f"  differs: {p}")
sys.exit(0 if same == len(theirs) else 1)
PY
echo "work folder: $WORK"
