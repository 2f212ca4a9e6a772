"""Built-in worlds: the toy assistant and the SmolLM2 study."""
