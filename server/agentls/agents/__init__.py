"""Agents: definition files found in the workspace, parsed and validated."""
