"""The levers that make a request cheaper before it reaches a model: one subpackage each.

``cache`` (exact and semantic), ``routing`` (cheap first, escalate on a failed check),
``compression`` and ``batch`` arrive with their issues as pipeline stages
(:class:`contracts.pipeline.Stage`) that can answer on their own or rewrite the request.
"""
