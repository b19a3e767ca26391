"""Hypothesis settings for the fuzz suite: reproducible (derandomized, no example database)
and small enough that the whole suite runs in well under a minute on two cores."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "herald-fuzz",
    derandomize=True,
    max_examples=500,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("herald-fuzz")
