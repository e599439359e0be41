#!/usr/bin/env bash
# The quick-start demo: builds the plugins and the agent, then runs the solar water
# heater plugin over recorded traces and prints each condition change.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build --release -p tend
for code in overheat tank_leak pump_failure; do
    echo "== solar-water-heater: plugins/solar-water-heater/traces/${code}.jsonl"
    target/release/tend plugin test target/plugins/solar-water-heater.wasm \
        --device-type solar-water-heater "plugins/solar-water-heater/traces/${code}.jsonl"
done
echo "== door-controller: forced_open"
target/release/tend plugin test target/plugins/door-controller.wasm \
    --device-type door-controller plugins/door-controller/traces/forced_open.jsonl
echo "== av-system: amp_protect"
target/release/tend plugin test target/plugins/av-system.wasm \
    --device-type av-system plugins/av-system/traces/amp_protect.jsonl
echo "== the requests the agent would send the central service for that AV trace on the example site"
echo "   (tend replay; the site's other devices never publish in it, so they go offline after 5 min)"
sed 's#tend/test-site/av-1/#tend/huaihai-138/av-hall-1/#' plugins/av-system/traces/amp_protect.jsonl \
    | TEND_LOG=warn target/release/tend replay --config configs/agent.toml - \
    | grep av-hall-1
