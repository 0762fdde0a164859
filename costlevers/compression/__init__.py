"""Prompt compression: question-aware extractive cuts of long prompts, per route (the ``compress`` stage)."""
