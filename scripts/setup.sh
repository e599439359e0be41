#!/usr/bin/env bash
# Installs what tend's build and tests need on a fresh Debian machine with rustup:
# the wasm32-wasip2 target (plugins are components), Mosquitto (the tests' real
# MQTT broker), Chromium (renders the HTML register) and PostgreSQL (the central
# service's tests). Safe to run again: it
# only installs what is missing.
set -euo pipefail

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    echo "setup: installing mosquitto"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto mosquitto-clients
fi
# The Debian package starts a system broker on :1883; the tests start their own
# on free loopback ports and do not need it.

# Debian's Chromium and ChromeDriver: headless, for the HTML operations register's
# test and the maintenance desk's browser tests (tests/integration/central.rs,
# driven through WebDriver).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "setup: installing chromium chromium-driver"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
fi

# PostgreSQL server binaries (Debian's `postgresql`): the central service's contract
# tests and the two-process test start a throw-away server of their own (initdb and
# pg_ctl in a temp dir on a free port; tend_central::testing::Postgres). The
# package's own cluster on :5432 is not used.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "setup: installing postgresql"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql
fi

# cargo-deb builds the Debian package (`cargo deb -p tend`, README "Install on a
# site"; the package test in tests/integration/package.rs), with dpkg-shlibdeps
# (dpkg-dev) for its dependencies and strip / objcopy (binutils) for the debug info.
if ! cargo deb --version >/dev/null 2>&1; then
    echo "setup: installing cargo-deb"
    cargo install cargo-deb --locked --version '^3.8'
fi
if ! command -v dpkg-shlibdeps >/dev/null 2>&1 || ! command -v objcopy >/dev/null 2>&1; then
    echo "setup: installing dpkg-dev binutils"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dpkg-dev binutils
fi

# Python plugins (plugins/sdk-python, plugins/door-controller-py): python3 with its
# venv module, then the pinned toolchain (componentize-py, mypy) from PyPI into
# target/python/venv (plugins/sdk-python/venv.sh; a no-op when already there).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "setup: installing python3 python3-venv"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv
fi
"$(dirname "$0")/../plugins/sdk-python/venv.sh" >/dev/null
