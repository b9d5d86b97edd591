"""memlora: persistent knowledge-graph memory for small local language models."""

__version__ = "0.1.0"
