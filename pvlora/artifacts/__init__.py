"""Files on disk and on the Hub: manifests, integrity, safe reads, atomic writes, PEFT factor I/O."""
