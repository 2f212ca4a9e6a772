"""Base models: resolve, load, import a GGUF."""
