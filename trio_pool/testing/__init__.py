"""Simulated upstreams (Codex, Claude, Gemini and their token endpoints) for tests, demo,
selftest and benchmarks.

accounts (pure quota/token state) · faults (SimConfig) · issue (token minting, new_account)
· state (SimState registry) · codex/claude/gemini/tokens (handlers) · server (SimUpstream,
serve_simulator, urls) · pool_files (write_pool, demo_state).
"""
