#!/usr/bin/env bash
# The quick-start demo: sets up (scripts/setup.sh, via build-plugins), builds the
# plugins and the agent, then runs `tend demo`: the embedded MQTT broker, the central
# ticket service with its desk page, simulated devices of a demo site with faults,
# and the agent, in one process. Ctrl-C stops everything.
#
# Options are passed on to `tend demo` (e.g. scripts/demo.sh --speed 120
# --data-dir /tmp/tend-demo); `target/release/tend demo --help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build --release -p tend
exec target/release/tend demo --plugins target/plugins "$@"
