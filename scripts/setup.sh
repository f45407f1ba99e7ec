#!/usr/bin/env bash
# Set up kvshard on a fresh Debian machine: Debian packages (only those missing), a virtualenv
# in .venv, and the package installed in editable mode. Safe to run again.
#
#   scripts/setup.sh          what the server needs
#   scripts/setup.sh --dpdk   also DPDK (Debian's dpdk, libdpdk-dev, pkg-config) and the dpdk extra
#                             (cffi), for --network-stack native --dpdk-pmd
#   scripts/setup.sh --test   also what the tests need: all of --dpdk, the test extras, memcached (the reference
#                             the tests compare kvshard with) and libmemcached-tools (memccapable,
#                             memcaslap), prometheus (promtool, and a real Prometheus server
#                             the metrics tests scrape with), iproute2 and iputils-ping (the
#                             native stack's tests make network namespaces and TAP devices and
#                             ping through them; they need root), nutcracker (twemproxy, which
#                             tests/test_twemproxy.py puts in front of three servers), sasl2-bin and libsasl2-modules (saslpasswd2 makes
#                             the users of the memcached that tests/conformance/test_auth.py logs in to). Debian may start memcached and
#                             prometheus services (ports 11211, 9090) when it installs them; the
#                             tests use free ports of their own.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TESTS=0
WITH_DPDK=0
for arg in "$@"; do
    case "$arg" in
        --test) WITH_TESTS=1; WITH_DPDK=1 ;;
        --dpdk) WITH_DPDK=1 ;;
        *) echo "setup.sh: unknown option $arg" >&2; exit 64 ;;
    esac
done

APT_PACKAGES=(gcc)
((WITH_TESTS)) && APT_PACKAGES+=(memcached libmemcached-tools prometheus iproute2 iputils-ping nutcracker sasl2-bin libsasl2-modules)
((WITH_DPDK)) && APT_PACKAGES+=(dpdk libdpdk-dev pkg-config)
# a python3 >= 3.11 that can make venvs (Debian's, or pyenv's) is all we need of Python
if ! python3 -c "import sys, venv, ensurepip; assert sys.version_info >= (3, 11)" 2>/dev/null; then
    APT_PACKAGES+=(python3 python3-venv python3-dev)
fi
# the compiled core (Cython, built by pip install) needs Python's headers
if ! python3 -c "import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" 2>/dev/null; then
    APT_PACKAGES+=(python3-dev)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if ((WITH_TESTS)); then
    .venv/bin/python -m pip install -q -e ".[test,dpdk]"
elif ((WITH_DPDK)); then
    .venv/bin/python -m pip install -q -e ".[dpdk]"
else
    .venv/bin/python -m pip install -q -e .
fi
echo "setup: ready (.venv)"
