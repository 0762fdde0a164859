"""Exact and semantic response caching: a pipeline stage that answers repeated questions for free,
and the hit verifier that decides when a paraphrase is the same question."""
