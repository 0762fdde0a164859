"""The batch API: OpenAI-compatible files and batches, whose lines run on idle local capacity
through the same pipeline as interactive requests, kept across restarts in the shared database."""
