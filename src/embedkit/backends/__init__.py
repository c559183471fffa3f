"""Embedding backends. Each module imports its heavy dependency lazily; only
:mod:`embedkit.registry` knows them, by dotted path."""
