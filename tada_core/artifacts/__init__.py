"""Artifacts: steering vectors and SAEs on disk and on the Hub, the reference code's files."""
