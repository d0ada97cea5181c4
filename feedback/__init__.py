"""feedback: citizen and trader satisfaction for ISO 9001 quality systems."""

from feedback.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
