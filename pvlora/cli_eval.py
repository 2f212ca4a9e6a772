"""CLI handlers for evaluation, the demo and the Hub (filled in as those stages land)."""
