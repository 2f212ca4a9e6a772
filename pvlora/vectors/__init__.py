"""Preference vectors: extract φ = ΔW+ − ΔW−, compose Σ η·φ, export, inspect."""
