"""Policies: model loading, the tiny offline policy, prompts and the warm-start corpus."""
