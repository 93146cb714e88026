#!/usr/bin/env bash
# Installs every dependency of rspo from Debian's packages on a fresh Debian 12 machine.
# Catch2 3 and a recent cmake come from bookworm-backports (Debian 12's own catch2 is the
# end-of-life v2). Safe to run again.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
backports="/etc/apt/sources.list.d/rspo-backports.sources"
if [ "$codename" = "bookworm" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  $SUDO tee "$backports" >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq

packages=(build-essential ninja-build pkg-config
          libeigen3-dev libxtensor-dev xtl-dev libxsimd-dev
          libtorch-dev  # optional: the torch adapter and its tests (tests/torch)
          libgloo-dev  # optional, with libtorch-dev: gloo headers for examples/torch_rspo (c10d::ProcessGroupGloo)
          libbenchmark-dev)
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"

if [ "$codename" = "bookworm" ]; then
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports catch2 cmake
else
  $SUDO apt-get install -y -qq --no-install-recommends catch2 cmake
fi
