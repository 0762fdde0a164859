"""Pricing every token: price table, ledger, budgets, rate limits, local cost, reports.

Its stage (admit, with its settle) plugs into :class:`contracts.pipeline.Pipeline`; its rows
(:class:`contracts.ledger_row.LedgerRow`) are built from the finished
:class:`contracts.context.RequestContext`. API keys live in ``access``.
"""
