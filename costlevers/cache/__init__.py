"""Exact and semantic response caching: a pipeline stage that answers repeated questions for free."""
