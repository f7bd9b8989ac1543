#!/usr/bin/env bash
# Install every Debian 12 package the project needs to build, test and run its
# demo. Idempotent and quick when everything is there already: only missing
# packages are installed (apt-get update runs only then).
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config
  libjson-c-dev libpci-dev libudev-dev libcmocka-dev pci.ids
  # end-to-end testbed: a QEMU guest with a virtual IOMMU and emulated
  # devices bound to vfio-pci (see tests/e2e/README.md)
  qemu-system-x86 linux-image-amd64 busybox-static cpio kmod
  # provisioning of QEMU 11 (vfio-user-pci client) in a trixie root
  debootstrap
  # the testbed's own kernel with iommufd (tools/provision-iommufd-kernel.sh)
  flex bison bc libelf-dev xz-utils
  # service tests: udevadm, setpriv
  udev util-linux
  # fuzz targets (tests/fuzz/README.md): clang with libFuzzer's runtime
  clang libclang-rt-14-dev
  # the Debian package (debian/, tools/test-package.sh)
  debhelper lintian
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]}; run as root (or install them) first" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
