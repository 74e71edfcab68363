#!/usr/bin/env bash
# Installs what aria-bridge needs to build and run on a fresh Debian/Ubuntu machine:
#   - ALSA headers + pkg-config (midir's Linux backend links libasound even with the JACK feature),
#   - the JACK headers and server (for `--features jack` and the end-to-end port tests),
#   - ONNX Runtime 1.31.1 (the version ort 2.0.0-rc.15 is built against) from the PyPI wheel,
#     unpacked to .ort/ where aria-bridge looks when ORT_DYLIB_PATH is unset,
#   - numpy, onnx and safetensors for models/export_onnx.py.
# Safe to run again: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ORT_VERSION=1.31.1
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

need_apt=()
# procps: pgrep, which scripts/with-jack.sh uses to tell stale JACK registry slots from live ones.
for p in libasound2-dev pkg-config libjack-jackd2-dev jackd2 jack-midi-clock procps; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -f ".ort/libonnxruntime.so.$ORT_VERSION" ]; then
  echo "setup: onnxruntime==$ORT_VERSION (PyPI wheel) -> .ort/" >&2
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$ORT_VERSION"
  mkdir -p .ort
  python3 - "$tmp"/onnxruntime-*.whl .ort <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with open(os.path.join(out, base), "wb") as f:
                f.write(z.read(n))
PY
  ln -sf "libonnxruntime.so.$ORT_VERSION" .ort/libonnxruntime.so
  rm -rf "$tmp"
fi

python3 -c "import numpy, onnx, safetensors" 2>/dev/null || {
  echo "setup: pip install numpy onnx safetensors" >&2
  python3 -m pip install -q numpy onnx safetensors
}
echo "setup: ok (ONNX Runtime at .ort/libonnxruntime.so.$ORT_VERSION)" >&2
