"""Execution: running agents (engine), and remembering what ran (history)."""
