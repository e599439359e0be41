#!/usr/bin/env bash
# Builds the three equipment plugins as wasm32-wasip2 components and copies them to
# target/plugins/, where configs/agent.toml looks for them; and the Python
# door-controller plugin (plugins/door-controller-py) to
# target/plugins/python/door-controller.wasm, beside them but not loaded with them (a
# plugin directory loads every *.wasm in it, and two plugins may not serve one
# type): to serve door controllers with it, put it in place of
# target/plugins/door-controller.wasm, or pin it (README, "Writing a plugin in Python").
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
plugins/sdk-python/tend-py component plugins/door-controller-py -o target/plugins/python/door-controller.wasm
ls -l target/plugins target/plugins/python
