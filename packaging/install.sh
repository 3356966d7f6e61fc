#!/usr/bin/env bash
# Install trio-pool for this user and run it as a service:
#   - the binary goes to ~/.local/bin/trio-pool (replaced atomically, so upgrading is re-running this);
#   - `trio-pool service install` then puts config.toml and pool/ under ~/.config/trio-pool (Linux)
#     or ~/Library/Application Support/trio-pool (macOS), never overwriting an existing config,
#     writes the systemd user unit or launchd agent (the files beside this script, with absolute
#     paths) and enables and (re)starts it.
# Usage: packaging/install.sh [PATH/TO/trio-pool]   (default: ./trio-pool, else dist/trio-pool)
set -euo pipefail

src="${1:-}"
if [[ -z "$src" ]]; then
    for candidate in ./trio-pool "$(dirname "$0")/../dist/trio-pool"; do
        if [[ -f "$candidate" ]]; then src="$candidate"; break; fi
    done
fi
if [[ -z "$src" || ! -f "$src" ]]; then
    echo "install.sh: no trio-pool binary found; pass its path (build one with \`make binary\`)" >&2
    exit 1
fi
case "$(uname -s)" in
    Linux | Darwin) ;;
    *) echo "install.sh: only Linux and macOS are supported" >&2; exit 1 ;;
esac

bin_dir="$HOME/.local/bin"
mkdir -p "$bin_dir"
# Copy beside the target, then rename over it: a running service keeps its old file until restarted.
cp "$src" "$bin_dir/.trio-pool.new"
chmod 755 "$bin_dir/.trio-pool.new"
mv -f "$bin_dir/.trio-pool.new" "$bin_dir/trio-pool"
echo "installed $("$bin_dir/trio-pool" --version) at $bin_dir/trio-pool"
case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) echo "note: $bin_dir is not on your PATH; add it to run \`trio-pool\` by name" ;;
esac

if ! "$bin_dir/trio-pool" service install; then
    echo "install.sh: the binary is installed, but not as a service (see above)" >&2
    exit 1
fi
