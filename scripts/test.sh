#!/usr/bin/env bash
# The test suite: everything that runs without a sound card, then the port tests against a JACK server in
# dummy mode (no audio hardware needed). Run ./scripts/setup.sh once before.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.ort/libonnxruntime.so.1.31.1}
cargo test --all-targets
if [ -x scripts/with-jack.sh ]; then
  scripts/with-jack.sh cargo test --features jack --test 'jack_*'
fi
