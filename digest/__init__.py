"""digest: weekly email newsletter digests, collected, composed and delivered exactly once."""

__version__ = "0.1.0"
