#!/usr/bin/env bash
# Installs the system packages examcap's build needs on a fresh Debian machine:
# HiGHS (via highs-sys) is C++ built with cmake, and its bindings are generated
# with bindgen, which needs libclang. protoc is vendored (protoc-bin-vendored),
# so it is not installed here. Safe to run again: it does nothing when all is present.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# bindgen loads libclang.so (not libclang-cpp, which Debian ships on its own).
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* /usr/lib/*/libclang-[0-9]*.so* >/dev/null 2>&1; then
  need+=(libclang-dev)
fi
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "examcap setup: installing ${need[*]} (to build HiGHS; chromium for the report test)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
