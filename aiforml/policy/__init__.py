"""Policies: model loading (7B QLoRA or tiny), sampling, prompts; the tiny offline policy in ``tiny/``."""
