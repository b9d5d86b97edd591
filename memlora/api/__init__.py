"""`memlora api`: an OpenAI-compatible HTTP server over memlora's engine, with a memory mode."""
