"""DPO and SFT runs: one run directory, checkpoints, resume."""
