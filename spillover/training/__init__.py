"""Offline training, apart from what serves: ``python -m spillover.training.cache_verifier``
retrains the semantic cache's hit verifier (the ``[train]`` extra). It sits with the composition
root because it uses the layers below it (the encoder in ``serving``, the verifier in
``costlevers``) and nothing imports it."""
