"""Replica autoscaling from queue depth and GPU state.

The control loop (:mod:`autoscaler.loop`) reads the engine-state quantities of
:class:`contracts.engine_state.EngineState` from Prometheus (the names in
:mod:`contracts.metric_names`) and asks the pure policy (:mod:`autoscaler.policy`) for a count;
the simulator (:mod:`autoscaler.simulator`) replays traces through the same policy and calls
:func:`fallback.decision.decide`, never a copy of it; :mod:`autoscaler.replay` is
``spillover simulate``.
"""
