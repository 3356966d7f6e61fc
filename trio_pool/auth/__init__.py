"""Shared mode: who may use the pool (pool keys, users, the admin password, sessions) and
how much (per-user limits). Off — local mode — until ``friend_code`` is set or a user exists."""
