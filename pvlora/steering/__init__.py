"""A loaded model steered by η: load vectors as live adapters, set scales, per-row mixes, log-probs, generation."""
