"""Evaluation: generation, scorers, sweeps over η, Pareto fronts, automatic η."""
