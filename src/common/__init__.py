"""Shared by every layer: paths, settings, schema, config, I/O, logging, errors."""
