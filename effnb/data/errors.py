"""The one error the data layer raises for bad or missing input data."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input data (one-line message)."""
