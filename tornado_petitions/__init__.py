"""tornado_petitions: citizen petitions over HTTP JSON, every change live over WebSockets."""

__version__ = "0.1.0"
