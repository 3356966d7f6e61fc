"""Shared fixtures: every test is bounded, and nothing reaches beyond loopback."""

from __future__ import annotations
