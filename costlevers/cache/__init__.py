"""Exact and semantic response caching, with a trained hit verifier that keeps false hits rare."""
