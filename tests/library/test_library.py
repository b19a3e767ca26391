"""The `herald` package: the README's example as written, the reporter, its artifact
links, the provider factory and CI detection."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path

import pytest

import herald
from bot.reporter import Reporter
from bot.settings import Settings
from tests.providers.test_detect import GITHUB

ROOT = Path(__file__).resolve().parents[2]
FAILING = (b'<testsuite name="unit"><testcase classname="app" name="ok"/>'
           b'<testcase classname="app" name="bad"><failure message="boom"/></testcase>'
           b"</testsuite>")


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Herald as a library", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_example_runs_as_written(workdir: Path) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example(), "README.md", "exec"), {"__name__": "__main__"})

    first, second = printed.getvalue().splitlines()
    assert first.startswith("1 failed; the report folder ")
    assert first.endswith("herald-reports/nightly-412")
    assert second == "['html', 'json', 'md'] ['app.log'] None"
    for folder in (workdir / "herald-report", workdir / "herald-reports" / "nightly-412"):
        assert sorted(p.name for p in folder.iterdir()) == [
            "report.html", "report.json", "report.md"]
    assert "app.log" in (workdir / "herald-report" / "report.md").read_text()


def reporter(workdir: Path, **environ: str) -> Reporter:
    settings = Settings.from_env({"HERALD_STATE_DIR": str(workdir / "state"), **environ})
    provider = herald.create_provider("local", {"reports_dir": str(workdir / "published")})
    return Reporter(provider, report_dir=workdir / "out", artifact_dir=workdir / "build",
                    settings=settings)


def run_with(workdir: Path, data: bytes = FAILING, run_id: str = "run-1") -> herald.TestRun:
    reports = workdir / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "junit.xml").write_bytes(data)
    return herald.parse_reports([str(reports)], run_id=run_id)


async def test_a_report_published_twice_replaces_the_first(workdir: Path) -> None:
    subject = reporter(workdir)
    await subject.report_test_result(run_with(workdir))
    report = await subject.report_test_result(run_with(workdir, FAILING.replace(
        b'<failure message="boom"/>', b"")))

    folder = workdir / "published" / "run-1"
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json",
                                                        "report.md"]
    assert '"failed":0' in (folder / "report.json").read_text()
    assert report.published is not None and report.published.url == (
        folder.resolve() / "report.html").as_uri()


async def test_formats_are_chosen_by_name_and_an_unknown_one_is_refused(workdir: Path) -> None:
    subject = reporter(workdir)
    report = await subject.report_test_result(run_with(workdir), formats=["json"])
    assert sorted(report.files) == ["json"]
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        await subject.report_test_result(run_with(workdir), formats=["pdf"])


async def test_collected_artifacts_are_stored_with_sizes_and_links_and_listed_in_the_report(
    workdir: Path,
) -> None:
    (workdir / "build" / "logs").mkdir(parents=True)
    (workdir / "build" / "logs" / "app.log").write_bytes(b"x" * 10)
    (workdir / "build" / "notes.txt").write_bytes(b"n")
    subject = reporter(workdir, HERALD_PUBLIC_URL="https://herald.example",
                       HERALD_URL_SIGNING_KEY="k")

    stored = await subject.collect_and_upload_artifacts("run-1", ["**/*.log"])
    report = await subject.report_test_result(run_with(workdir))

    [log] = stored
    assert (log.name, log.size) == ("logs/app.log", 10)
    assert log.url.startswith("https://herald.example/files/store/run-1/logs/app.log?expires=")
    assert (workdir / "state" / "store" / "run-1" / "logs" / "app.log").read_bytes() == b"x" * 10
    assert [a.name for a in report.artifacts] == ["logs/app.log"]


async def test_an_artifact_too_large_to_store_is_named_in_the_report(workdir: Path) -> None:
    (workdir / "build").mkdir()
    (workdir / "build" / "big.log").write_bytes(b"x" * 2048)
    (workdir / "build" / "small.log").write_bytes(b"x")
    subject = reporter(workdir, HERALD_ARTIFACT_MAX_BYTES="1024")

    stored = await subject.collect_and_upload_artifacts("run-1", ["*.log"])
    await subject.report_test_result(run_with(workdir))

    assert [s.name for s in stored] == ["small.log"]
    report = (workdir / "out" / "report.json").read_text()
    assert '"source":"big.log"' in report and "not stored" in report


@pytest.mark.parametrize("pattern", ["/etc/*", "../*", "logs/../../x"])
async def test_a_pattern_that_leaves_the_artifact_folder_is_refused(
    workdir: Path, pattern: str
) -> None:
    (workdir / "build").mkdir()
    with pytest.raises(ValueError, match="must stay inside"):
        await reporter(workdir).collect_and_upload_artifacts("run-1", [pattern])


class SlowStore:
    """A store whose every lookup takes a while and records how many run at once."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.calls: list[str] = []
        self.in_flight = 0
        self.most_at_once = 0
        self.failing = failing

    async def put(self, run_id: str, name: str, source: Path) -> herald.StoredArtifact:
        raise AssertionError("not used")

    async def url(self, run_id: str, name: str) -> str | None:
        self.calls.append(name)
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            if name in self.failing:
                raise ConnectionError("store unreachable")
            return None if name.startswith("missing") else f"https://store.example/{name}"
        finally:
            self.in_flight -= 1


async def test_artifact_links_are_looked_up_at_once_and_then_kept(workdir: Path) -> None:
    store = SlowStore()
    subject = Reporter(None, store=store, settings=Settings.from_env({}))
    names = [f"shard-{i}.xml" for i in range(100)]

    first = await subject.get_artifact_urls("run-1", names)
    second = await subject.get_artifact_urls("run-1", names)

    # All hundred in flight together: one lookup's time, not a hundred.
    assert store.most_at_once == 100
    assert first == second == {n: f"https://store.example/{n}" for n in names}
    assert len(store.calls) == 100  # the second call was answered from the cache


async def test_one_name_failing_is_none_logged_once_and_costs_the_others_nothing(
    workdir: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    store = SlowStore(failing=frozenset({"flaky.xml"}))
    subject = Reporter(None, store=store, settings=Settings.from_env({}))

    answers = await subject.get_artifact_urls("run-1", ["a.xml", "flaky.xml", "missing.xml"])
    again = await subject.get_artifact_urls("run-1", ["flaky.xml"])

    assert answers == {"a.xml": "https://store.example/a.xml", "flaky.xml": None,
                       "missing.xml": None}
    assert again == {"flaky.xml": None}
    assert store.calls.count("flaky.xml") == 2  # a failure is not kept: asked again
    # Unconfigured structlog prints to stdout, Herald's configured logging to stderr.
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert logged.count("no link for an artifact") == 1


def test_detect_ci_environment_names_the_system_and_the_run() -> None:
    found = herald.detect_ci_environment(GITHUB)
    assert found is not None
    name, config = found
    assert name == "github"
    assert (config["repository"], config["commit_sha"]) == (
        "heraldhq/herald", "1111111111111111111111111111111111111111")
    assert herald.detect_ci_environment({"PATH": "/usr/bin"}) is None


def test_create_provider_refuses_unknown_names_and_keys(workdir: Path) -> None:
    with pytest.raises(ValueError, match="no provider named 'jenkinz'"):
        herald.create_provider("jenkinz")
    with pytest.raises(ValueError, match="HERALD_LOCAL_REPORTS_DIRR"):
        herald.create_provider("local", {"reports_dirr": "x"})


def test_a_provider_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        herald.register_provider("github", herald.TestRun)  # type: ignore[arg-type]


def test_a_run_built_by_hand_renders_like_a_parsed_one(workdir: Path) -> None:
    run = herald.TestRunResult(id="by-hand", suites=[herald.Suite(name="unit", cases=[
        herald.TestCase(name="adds", classname="app.Cart", suite="unit",
                        status=herald.Status.PASSED, duration=0.2),
        herald.TestCase(name="totals", classname="app.Cart", suite="unit",
                        status=herald.Status.FAILED, message="expected 90"),
    ])], metrics=[herald.Metric("p95", 120.0, "ms")])

    report = asyncio.run(Reporter(None, report_dir=workdir / "out",
                                  settings=Settings.from_env({})).report_test_result(run))

    markdown = report.files["md"].read_text()
    assert "totals" in markdown and "p95" in markdown
