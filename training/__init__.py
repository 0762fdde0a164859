"""Offline training, apart from what serves: ``python -m training.cache_verifier`` retrains the
semantic cache's hit verifier (the ``[train]`` extra). It may use everything below it (the
encoder in ``serving``, the verifier in ``costlevers``); nothing imports it."""
