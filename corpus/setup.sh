#!/usr/bin/env bash
# Installs what the reference-corpus builder needs from Debian: the cross compilers with their C
# libraries, dtc and openssl, and the foreign architectures whose packages it downloads.
# Usage: corpus/setup.sh [small|full]   (small: armhf only, what CI builds)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
case "${1:-full}" in
    small) archs="armhf" ;;
    full) archs="armhf armel mipsel" ;;
    *) echo "usage: $0 [small|full]" >&2; exit 2 ;;
esac
pkgs="device-tree-compiler openssl"
for a in $archs; do
    $SUDO dpkg --add-architecture "$a"
    case "$a" in
        armhf) pkgs="$pkgs gcc-arm-linux-gnueabihf libc6-dev-armhf-cross" ;;
        armel) pkgs="$pkgs gcc-arm-linux-gnueabi libc6-dev-armel-cross" ;;
        mipsel) pkgs="$pkgs gcc-mipsel-linux-gnu libc6-dev-mipsel-cross" ;;
    esac
done
# A mirror in the middle of a sync can fail one index; the downloads below still work from the
# others, and a package that cannot be found stops the build with apt's message.
$SUDO apt-get update -qq || echo "apt-get update reported errors; continuing" >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
