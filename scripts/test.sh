#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, the plugins' native unit tests, the
# agent's unit tests, and the integration tests (real wasm plugins built from
# source by tests/build.rs, real Mosquitto, real HTTP central service, real sled).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
