"""pvlora: compose LLM behaviour from separately trained DPO preference vectors (PEFT LoRA)."""

__version__ = "0.2.0"

# The package's layers, lowest first (one folder each; config and data share a layer). A module imports
# only from its own layer or a lower one, at top level or inside a function; tests/package/test_layers.py
# and benchmarks/tools/module_graph.py read this rule from here.
LAYERS = (("core",), ("artifacts",), ("config", "data"), ("bases",), ("vectors",), ("steering",), ("training",),
          ("evaluation",), ("serving",), ("worlds",), ("cli",))

__all__ = ["__version__", "load_composed", "set_weights", "get_weights", "generate", "row_weights", "extract_vector",
           "compose", "load_config", "add_vector", "remove_vector", "merge_weighted"]


def __getattr__(name):
    # Lazy: `import pvlora` and `pvlora --help` stay instant; torch/transformers load on first use.
    if name in ("load_composed", "set_weights", "get_weights"):
        from pvlora.steering import load as runtime

        return getattr(runtime, name)
    if name in ("generate", "row_weights"):  # per-request η: every row of a batch at its own mix
        from pvlora.steering import rowwise

        return getattr(rowwise, name)
    if name in ("add_vector", "remove_vector"):  # vectors swapped in and out of a loaded model
        from pvlora.steering import swap

        return getattr(swap, name)
    if name == "merge_weighted":  # a composition in memory through PEFT's add_weighted_adapter(cat)
        from pvlora.steering.merge import merge_weighted

        return merge_weighted
    if name == "extract_vector":
        from pvlora.vectors.extract import extract_vector

        return extract_vector
    if name == "compose":
        from pvlora.vectors.compose import compose

        return compose
    if name == "load_config":
        from pvlora.config import load_config

        return load_config
    raise AttributeError(f"module 'pvlora' has no attribute {name!r}")
