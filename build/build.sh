#!/usr/bin/env bash
# Build dist/trio-pool (one file) with PyInstaller; work files go to build/.work/.
# Usage: build/build.sh [PYTHON]   (default: .venv/bin/python, which needs the `build` group)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --workpath build/.work --distpath dist build/trio_pool.spec
if [[ "${TRIO_POOL_ONEDIR:-0}" != 1 ]]; then
    ls -l dist/trio-pool
    dist/trio-pool --version
fi
