"""``trio-pool setup codex|claude|gemini``: point a CLI at the proxy (clients) with a backup
of every file changed first (backup), so ``--undo`` can put it back."""
