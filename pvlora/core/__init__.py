"""Foundation: exact low-rank math, η checks, names, seeded splits, the built-in registry, chat templates, the refusal judge."""
