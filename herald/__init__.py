"""Herald as a library: parse test reports, write Markdown, HTML and JSON, publish them
through a provider, keep artifacts beside them with links. The names here are the stable
API; `bot`, `handlers` and `providers` are Herald's internals.

    import asyncio, herald

    run = herald.parse_reports(["build/test-results/**/*.xml"], run_id="nightly-412")
    # or, from counts as the seed's TestRunResult was built:
    # run = herald.from_counts(id="nightly-412", passed=38, failed=1, failed_tests=[...])
    provider = herald.create_provider("local", {"reports_dir": "herald-reports"})
    reporter = herald.Reporter(provider, report_dir="herald-report", artifact_dir="build")
    report = asyncio.run(reporter.report_test_result(run))
"""

from bot import __version__
from bot.artifact_store import ArtifactStore, DirectoryStore, StoredArtifact
from bot.ports import NotConfigured, ProviderError
from bot.reporter import PublishedReport, Publisher, Report, Reporter
from bot.results.counts import from_counts
from bot.results.model import (
    Artifact,
    Metric,
    ParseError,
    Status,
    Suite,
    TestCase,
    TestRun,
)
from bot.results.parsers import collect as _collect
from herald._providers import (
    available_providers,
    create_artifact_store,
    create_provider,
    detect_ci_environment,
    register_provider,
)

#: The seed's name for a test run's results.
TestRunResult = TestRun


def parse_reports(paths: list[str], run_id: str) -> TestRun:
    """Every test report the paths (files, folders, globs such as `reports/**/*.xml`)
    name, in one run; a file that is no report is named in `run.errors`."""
    return _collect(paths, run_id)


__all__ = [
    "Artifact",
    "ArtifactStore",
    "DirectoryStore",
    "Metric",
    "NotConfigured",
    "ParseError",
    "ProviderError",
    "PublishedReport",
    "Publisher",
    "Report",
    "Reporter",
    "Status",
    "StoredArtifact",
    "Suite",
    "TestCase",
    "TestRun",
    "TestRunResult",
    "__version__",
    "available_providers",
    "create_artifact_store",
    "create_provider",
    "detect_ci_environment",
    "from_counts",
    "parse_reports",
    "register_provider",
]
