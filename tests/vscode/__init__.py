"""Tests of the VS Code extension: its own checks, and end to end in a real VS Code."""
