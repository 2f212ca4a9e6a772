"""The toy world: a built-in tiny base and data with exact ground truth, so the whole method runs
on a laptop CPU in minutes with no download.

- :mod:`pvlora.worlds.toy.corpus`: requests, responses, preference pairs, evaluation prompts and the
  ground-truth judge.
- :mod:`pvlora.worlds.toy.base`: the ~0.74M-parameter Llama SFT'd from scratch on the corpus, cached.
- :mod:`pvlora.worlds.toy.demo`: ``pvlora demo``, the whole pipeline end to end.

Reached through :mod:`pvlora.core.registry` by name (``tiny``, ``toy``); nothing in the core imports it.
"""
