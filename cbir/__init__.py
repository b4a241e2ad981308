"""cbir: content-based image retrieval (command line, configuration and shared errors)."""

__version__ = "0.1.0"
