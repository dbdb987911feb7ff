"""Context: what one run sends to the model (the prompt, its files, their budgets, the manifest)."""
