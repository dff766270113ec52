#!/usr/bin/env bash
# fwsim vs jefferson on a JFFS2 image of at least 64 MiB built in code (examples/synth_jffs2.rs:
# camera-like ARM binaries, libraries, modules, web UI and configs; zlib, 64 KiB erase blocks).
#
# hyperfine times `fwsim unpack --json` (release build, in memory: every file is also hashed and
# scanned for nested formats; `fwsim-depth1` stops after the JFFS2 level, which shows what the
# reader itself costs) against `jefferson -d OUTDIR` (writes the files to the same tmpfs);
# then both outputs are compared path by path (size and SHA-256 of every file, symlink targets).
#
# Usage: benches/jffs2.sh [WORKDIR]     (default: a fresh folder under /dev/shm)
# Needs: hyperfine, GNU time (package `time`), jefferson (pip install jefferson).
# Knobs: MIN_MIB (image size, default 64), RUNS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${1:-$(mktemp -d /dev/shm/fwsim-jffs2.XXXXXX)}
MIN_MIB=${MIN_MIB:-64}
RUNS=${RUNS:-5}

for t in hyperfine jefferson /usr/bin/time python3; do
    command -v "$t" >/dev/null || { echo "jffs2.sh: $t is missing" >&2; exit 1; }
done

cargo build --release --quiet --bin fwsim --example synth_jffs2
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
FWSIM=$TARGET/release/fwsim
mkdir -p "$WORK"
IMG=$WORK/bench.jffs2
"$TARGET/release/examples/synth_jffs2" "$IMG" --min-mib "$MIN_MIB"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools: jefferson $(python3 -c 'import importlib.metadata as m; print(m.version("jefferson"))'), $(hyperfine --version)"

OUT=$WORK/jefferson-out
hyperfine --warmup 1 --runs "$RUNS" --style basic --export-json "$WORK/hyperfine.json" \
    -n fwsim "$FWSIM unpack --json --quiet $IMG > /dev/null" \
    -n fwsim-depth1 "$FWSIM unpack --json --quiet --max-depth 1 $IMG > /dev/null" \
    -n jefferson --prepare "rm -rf $OUT" "jefferson -d $OUT $IMG > /dev/null 2>&1"
/usr/bin/time -v "$FWSIM" unpack --json --quiet "$IMG" > "$WORK/fwsim.jsonl" 2> "$WORK/fwsim.time"

python3 - "$WORK" "$OUT" <<'PY'
import hashlib, json, os, sys
work, out = sys.argv[1], sys.argv[2]
t = {r["command"]: r for r in json.load(open(os.path.join(work, "hyperfine.json")))["results"]}
fw, jf = t["fwsim"], t["jefferson"]
print(f"speed: fwsim {fw['median']:.3f} s (user {fw['user']:.3f} s), jefferson {jf['median']:.3f} s "
      f"(user {jf['user']:.3f} s) -> fwsim is {jf['median'] / fw['median']:.1f}x faster (medians), "
      f"{(jf['user'] + jf['system']) / (fw['user'] + fw['system']):.1f}x less CPU")
d1 = t["fwsim-depth1"]
print(f"       fwsim --max-depth 1 {d1['median']:.3f} s (user {d1['user']:.3f} s) -> "
      f"{jf['median'] / d1['median']:.1f}x faster, {(jf['user'] + jf['system']) / (d1['user'] + d1['system']):.1f}x less CPU")
rss = next(int(l.split(":")[1]) for l in open(os.path.join(work, "fwsim.time")) if "Maximum resident" in l)
print(f"memory: fwsim peak RSS {rss / 1024:.0f} MiB")
ours = {}
for line in open(os.path.join(work, "fwsim.jsonl")):
    e = json.loads(line)
    if e.get("formats") != ["jffs2"]:
        continue
    rel = e["path"].split("/", 1)[1]
    ours[rel] = (e["kind"], e.get("size") if e["kind"] == "file" else None,
                 e.get("sha256") if e["kind"] == "file" else e.get("target"))
theirs = {}
for root, dirs, names in os.walk(out):
    for n in dirs + names:
        p = os.path.join(root, n)
        rel = os.path.relpath(p, out)
        if os.path.islink(p):
            theirs[rel] = ("symlink", None, os.readlink(p))
        elif os.path.isdir(p):
            theirs[rel] = ("dir", None, None)
        else:
            data = open(p, "rb").read()
            theirs[rel] = ("file", len(data), hashlib.sha256(data).hexdigest())
same = sum(1 for k in ours if theirs.get(k) == ours[k])
print(f"entries: fwsim {len(ours)}, jefferson {len(theirs)}, identical {same}")
for k in sorted(set(ours) ^ set(theirs))[:10]:
    print(f"  only in {'fwsim' if k in ours else 'jefferson'}: {k}")
for k in sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])[:10]:
    print(f"  differs: {k}: {ours[k]} vs {theirs[k]}")
PY
echo "work folder: $WORK"
