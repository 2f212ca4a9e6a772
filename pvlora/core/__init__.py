"""Foundation: exact low-rank math, η checks, names, seeded splits, the built-in registry, chat templates, the judges (refusal or compliance; four outcomes)."""
