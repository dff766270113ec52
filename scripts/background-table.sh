#!/usr/bin/env bash
# Writes src/compare/background.df.zst, the rarity table fwsim uses without a corpus database:
# document frequencies over the families of the reference corpus's `fit` split (corpus/; the
# `score` split stays unseen, so the benchmark's figures do not rest on it), plus the synthetic
# vendor families fwsim's own writers build (`--synth`: the demo's and the tests' common parts)
# and the real samples below, each family named once (FAMILY=PATH; a folder counts as one image
# of its files). Only items held by two or more families are kept.
# Usage: scripts/background-table.sh [CORPUS_DIR]   (run from the repository root; the corpus is
# built, cached, by `corpus/bench.sh full` or `fwsim-corpus build`; default target/refcorpus/full)
set -euo pipefail
corpus=${1:-target/refcorpus/full}
r=${FWSIM_REALDATA:-../shared/realdata}
o=$r/OpenIPC__firmware/general/package
cargo build -q --profile test --bin fwsim
mapfile -t members < <(cargo run -q --profile test -p fwsim-corpus -- \
    background-members --corpus "$corpus" --split fit)
exec target/debug/fwsim --quiet background-table --synth -o src/compare/background.df.zst \
  "${members[@]}" \
  dahua=$r/BotoX__DH_IPC-HX4XXX-Eos/romfs-x.squashfs.img.extracted \
  dahua=$r/BotoX__DH_IPC-HX4XXX-Eos/user-x.squashfs.img.extracted \
  dahua=$r/BotoX__DH_IPC-HX4XXX-Themis/romfs-x.squashfs.img.extracted \
  xiongmai=$r/nikitos1550__XM_ipcam_crypto_generator/rootfs.romfs \
  escam=$r/gadonline__escam_pvr008/rootfs \
  hisilicon-hi3516ev200-sdk=$o/hisilicon-osdrv-hi3516ev200/files \
  hisilicon-hi3516cv300-sdk=$o/hisilicon-osdrv-hi3516cv300/files \
  goke-gk7205v200-sdk=$o/goke-osdrv-gk7205v200/files \
  ingenic-t20-sdk=$o/ingenic-osdrv-t20/files \
  ingenic-t31-sdk=$o/ingenic-osdrv-t31/files \
  novatek-nt9856x-sdk=$o/novatek-osdrv-nt9856x/files \
  sigmastar-infinity6e-sdk=$o/sigmastar-osdrv-infinity6e/files \
  xiongmai-xm530-sdk=$o/xiongmai-osdrv-xm530/files
