"""Tests of the cost levers (costlevers/)."""
