"""Pricing every token: price table, ledger, budgets, rate limits, reports (the costs issue).

Its stages (admit, settle) plug into :class:`serving.pipeline.Pipeline`; its rows are built
from the finished :class:`serving.context.RequestContext` and its :class:`serving.context.Usage`.
"""
