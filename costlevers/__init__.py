"""The levers that make a request cheaper before it reaches a model: one subpackage each.

``cache`` (exact and semantic) is here; routing, compression and batch come as subpackages of
their own, each a pipeline stage (:class:`contracts.pipeline.Stage`) that keeps its state in its
own context slot and is put in order by ``spillover.assembly``. Offline training lives apart,
in ``training``.
"""
