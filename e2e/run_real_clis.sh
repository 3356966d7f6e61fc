#!/usr/bin/env bash
# Real Codex CLI, Claude Code and Gemini CLI (from npm) against `trio-pool demo`, offline.
# Installs the CLIs once into a cache outside the repo, then runs e2e/real_clis.py.
# Not part of CI: the CLIs weigh about 750 MB. See e2e/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cache="${TRIO_POOL_E2E_CACHE:-$HOME/.cache/trio-pool-e2e}"
python="${PYTHON:-$repo/.venv/bin/python}"

command -v node >/dev/null || { echo "e2e: node (>= 20) is required" >&2; exit 2; }
command -v npm >/dev/null || { echo "e2e: npm is required" >&2; exit 2; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "e2e: node >= 20 is required (found $(node --version))" >&2
  exit 2
fi
[ -x "$python" ] || { echo "e2e: $python not found; run 'make test' once to create .venv" >&2; exit 2; }

# Pinned to the versions trio-pool says it is (trio_pool/providers/identity.py, the one place
# they are kept, real-clients.md was written against them); override to try newer ones.
pinned="$(PYTHONPATH="$repo" "$python" -c 'from trio_pool.providers import identity as i
print(i.CODEX_VERSION, i.CLAUDE_CODE_VERSION, i.GEMINI_CLI_VERSION)')"
read -r pinned_codex pinned_claude pinned_gemini <<<"$pinned"
codex_version="${CODEX_VERSION:-$pinned_codex}"
claude_version="${CLAUDE_VERSION:-$pinned_claude}"
gemini_version="${GEMINI_VERSION:-$pinned_gemini}"

stamp="$cache/.installed-codex-$codex_version-claude-$claude_version-gemini-$gemini_version"
if [ ! -e "$stamp" ]; then
  echo "e2e: installing the CLIs into $cache (about 750 MB, once)"
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-fund --no-audit --loglevel=error \
    "@openai/codex@$codex_version" \
    "@anthropic-ai/claude-code@$claude_version" \
    "@google/gemini-cli@$gemini_version"
  rm -f "$cache"/.installed-*
  touch "$stamp"
fi

bin="$cache/node_modules/.bin"
scratch="$(mktemp -d)"
echo "e2e: $("$bin/codex" --version), claude $("$bin/claude" --version), gemini $(HOME="$scratch" "$bin/gemini" --version)"
rm -rf "$scratch"
# --keys: each CLI set up by `trio-pool setup --key` alone (no login), checked for the key.
# Then, its own step: Claude Code on a Codex-only pool (translation), unless --only names
# other CLIs; `--only claude-on-codex` runs that step alone.
script="real_clis.py"
only=""
translate=1
for arg in "$@"; do
  case "$arg" in
    --keys) script="real_clis_keys.py"; translate=0 ;;
    --only) only=1; translate=0 ;;
    claude-on-codex) [ -n "$only" ] && script="" && translate=1 ;;
  esac
done
status=0
if [ -n "$script" ]; then
  "$python" "$here/$script" --bin-dir "$bin" --repo "$repo" "$@" || status=$?
fi
if [ "$translate" = 1 ]; then
  keep=""
  for arg in "$@"; do [ "$arg" = "--keep" ] && keep="--keep"; done
  "$python" "$here/real_claude_on_codex.py" --bin-dir "$bin" --repo "$repo" $keep || status=$?
fi
exit "$status"
