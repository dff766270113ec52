#!/bin/sh
# Writes src/compare/background.df.zst, the rarity table fwsim uses without a corpus: the
# synthetic vendor families fwsim's own writers build, plus the real samples below, each
# family named once (FAMILY=PATH; a folder counts as one image of its files).
# Until the labelled reference corpus exists, this is the whole background: say so in reports.
# Usage: scripts/background-table.sh [FWSIM_BINARY]   (run from the repository root)
set -eu
fwsim=${1:-target/debug/fwsim}
r=${FWSIM_REALDATA:-../shared/realdata}
o=$r/OpenIPC__firmware/general/package
exec "$fwsim" --quiet background-table --synth -o src/compare/background.df.zst \
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
