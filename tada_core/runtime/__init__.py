"""Plumbing every job shares: safe file I/O, multi-process splitting."""
