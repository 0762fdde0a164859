"""The request path's own stages: dispatch (local engines or hosted) and respond.

Each lives in its own module and is imported from there, so nothing here loads Ray or httpx.
The other stages live with their own concern (authenticate in ``access``, admit in
``costbook``, the cache in ``costlevers``) and plug into the same
:class:`contracts.pipeline.Pipeline`; ``spillover.assembly`` puts them in order.
"""
