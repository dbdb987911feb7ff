"""Backends: talking to models (HTTP APIs or local commands) behind one streaming interface."""
