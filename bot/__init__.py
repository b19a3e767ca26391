"""Herald: CI results from eight CI systems, reported where people review code."""

__version__ = "0.1.0"
