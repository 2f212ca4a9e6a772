"""Scorers, the evaluator, η grids, sweeps, tune and the test log."""
