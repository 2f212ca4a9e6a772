"""The OpenAI-compatible server: request batcher, streaming, the app."""
