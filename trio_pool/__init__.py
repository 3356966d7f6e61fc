"""trio-pool: pool Codex CLI, Claude Code and Gemini CLI accounts behind one local address."""

__version__ = "0.1.0"
