#!/usr/bin/env bash
# Builds the three equipment plugins as wasm32-wasip2 components and copies them to
# target/plugins/, where configs/agent.toml looks for them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The `plugin` profile (Cargo.toml): release plus whole-program LTO.
cargo build --profile plugin --target wasm32-wasip2 \
    -p tend-plugin-solar-water-heater -p tend-plugin-door-controller -p tend-plugin-av-system
mkdir -p target/plugins
for p in solar_water_heater door_controller av_system; do
    cp "target/wasm32-wasip2/plugin/tend_plugin_${p}.wasm" "target/plugins/${p//_/-}.wasm"
done
ls -l target/plugins
