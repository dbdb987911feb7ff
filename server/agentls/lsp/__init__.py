"""The LSP layer: the only part of agentls that imports pygls; it adapts the service."""
