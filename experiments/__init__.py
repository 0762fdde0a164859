"""A/B experiments over the levers: sticky assignment, feedback, sequential analysis, reports.

A variant is a set of a route's stage settings (spillover.experiment_routes turns it into a
route of its own at start); this package assigns requests to variants, stores quality feedback
and analyses the ledger rows the variants produced.
"""
