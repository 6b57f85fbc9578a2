"""The version of the tada-steer package (a leaf module: artifacts record it without importing the package)."""

__version__ = "0.1.0"
