"""Replica autoscaling from queue depth and GPU state (the autoscaler issue fills this room).

It will read the same :class:`contracts.engine_state.EngineState` quantities from Prometheus
(the names in :mod:`serving.metrics`) and call :func:`fallback.decision.decide` in its
simulator, never a copy of it.
"""
