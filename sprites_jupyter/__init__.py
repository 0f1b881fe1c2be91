"""Sprites for Jupyter: run cells in persistent, checkpointable Linux sandboxes."""

__version__ = "0.1.0"
