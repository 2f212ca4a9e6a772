"""The SmolLM2 study: a real instruct base (SmolLM2-135M-Instruct, shipped as a GGUF on PyPI) with
English prompts the project wrote, pairs built from the base's own answers, a refusal judge and a
demo. Everything here runs offline on a CPU."""
