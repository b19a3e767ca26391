"""Test results: the model (`bot.results.model`) and the parsers (`bot.results.parsers`)."""

from bot.results.model import (
    Artifact,
    Attempt,
    Metric,
    ParseError,
    RunStatus,
    Status,
    Suite,
    TestCase,
    TestRun,
    Totals,
)

__all__ = [
    "Artifact",
    "Attempt",
    "Metric",
    "ParseError",
    "RunStatus",
    "Status",
    "Suite",
    "TestCase",
    "TestRun",
    "Totals",
]
