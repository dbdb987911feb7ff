"""agentls: a language server that runs the agents kept in a repository from any editor."""

__version__ = "0.1.0"
