"""Pricing every token: price table, ledger, budgets, rate limits, reports (the costs issue).

Its stages (admit, settle) plug into :class:`contracts.pipeline.Pipeline`; its rows are built
from the finished :class:`contracts.context.RequestContext` and its :class:`contracts.context.Usage`.
"""
