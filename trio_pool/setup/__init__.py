"""``trio-pool setup codex|claude|gemini``: point a CLI at the proxy (edits: the pure text
edits; clients: plan, write with a backup, --undo), and the SETUP document of how to do it by
hand or with the command, with or without a pool key (instructions). And ``trio-pool state
migrate``: one host's data/state.db and pool directory copied into PostgreSQL for several
hosts (migrate_state)."""
