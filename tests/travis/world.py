"""Builders for Travis CI test data: a signed build notification and the build it names,
a two-leg matrix whose logs end in pytest's summary."""

from __future__ import annotations

import copy
import json
from typing import Any

from bot.events import Event, RunRef
from providers.travis import TravisProvider
from tests.fakes.ci_world import SourceAndForge
from tests.fakes.travis import FakeTravis, TravisBuild, TravisJob
from tests.providers.senders import fixture, travis_body, travis_key_pair, travis_signature

REPO = "orbit-labs/telemetry"
REPO_ID = 19283746
BUILD_ID = 271834455
PR = 233
HEAD = "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2"
MERGE = "b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80"
LEG_311, LEG_312 = 612093004, 612093005

#: What a failing pytest run prints at the end of a job log, Travis' markers and colours
#: included; one test name mentions someone and an issue, as a hostile test may.
FAILING_LOG = (
    b"travis_fold:start:install\r\x1b[0K$ pip install -e .[test]\n"
    b"travis_fold:end:install\r\x1b[0K"
    b"$ pytest -rA\n"
    b"============================= test session starts ==============================\n"
    b"collected 5 items\n\n"
    b"tests/test_upload.py ..F.F                                               [100%]\n\n"
    b"=================================== FAILURES ===================================\n"
    b"____________________________ test_batches_offline _____________________________\n"
    b"E       AssertionError: expected 3 batches, got 2\n"
    b"=========================== short test summary info ============================\n"
    b"PASSED tests/test_upload.py::test_single_upload\n"
    b"PASSED tests/test_upload.py::test_retry_upload\n"
    b"PASSED tests/test_upload.py::TestQueue::test_orders[fifo]\n"
    b"FAILED tests/test_upload.py::test_batches_offline - AssertionError: expected 3 "
    b"batches, got 2\n"
    b"FAILED tests/test_upload.py::test_ping_@maintainers_closes_#123 - assert False\n"
    b"\x1b[31m========================= \x1b[1m2 failed\x1b[0m, \x1b[32m3 passed\x1b[0m"
    b"\x1b[31m in 1.84s\x1b[0m\x1b[31m ==========================\x1b[0m\n"
    b"The command \"pytest -rA\" exited with 1.\n"
)
PASSING_LOG = (
    b"$ pytest -rA\n"
    b"PASSED tests/test_upload.py::test_single_upload\n"
    b"PASSED tests/test_upload.py::test_retry_upload\n"
    b"PASSED tests/test_upload.py::TestQueue::test_orders[fifo]\n"
    b"PASSED tests/test_upload.py::test_batches_offline\n"
    b"PASSED tests/test_upload.py::test_ping_@maintainers_closes_#123\n"
    b"============================== 5 passed in 1.71s ===============================\n"
    b"The command \"pytest -rA\" exited with 0.\n"
)


def notification(**changes: Any) -> bytes:
    """The fixture's failed pull request build notification, `changes` applied: the JSON
    of the `payload` field, which is what Travis signs."""
    body: dict[str, Any] = copy.deepcopy(json.loads(fixture("travis",
                                                            "build_failed_pull_request.json")))
    body.update(changes)
    return json.dumps(body).encode()


def signed(payload: bytes) -> tuple[bytes, dict[str, str]]:
    """The form body and headers Travis sends for `payload`."""
    private, _ = travis_key_pair(0)
    return travis_body(payload), {
        "content-type": "application/x-www-form-urlencoded",
        "signature": travis_signature(private, payload),
        "travis-repo-slug": REPO,
    }


def ref_of(payload: bytes) -> RunRef:
    body, headers = signed(payload)
    _, public = travis_key_pair(0)
    event = TravisProvider().parse(headers, body, [public])
    assert isinstance(event, Event) and event.run is not None
    return event.run


def seed_build(travis: FakeTravis, *, state: str = "failed",
               legs: list[TravisJob] | None = None, **changes: Any) -> TravisBuild:
    """Build 1042 of pull request 233: python 3.11 failing, python 3.12 passing."""
    if REPO_ID not in travis.repos:
        travis.add_repo(REPO_ID, REPO)
    jobs = legs if legs is not None else [
        TravisJob(LEG_311, "1042.1", "failed",
                  {"os": "linux", "language": "python", "python": "3.11"}, log=FAILING_LOG),
        TravisJob(LEG_312, "1042.2", "passed",
                  {"os": "linux", "language": "python", "python": "3.12"}, log=PASSING_LOG),
    ]
    options: dict[str, Any] = {"event_type": "pull_request", "pull_request_number": PR}
    options.update(changes)
    return travis.add_build(TravisBuild(BUILD_ID, "1042", state, REPO_ID, REPO, MERGE,
                                        jobs=jobs, **options))


class TravisAndForge(SourceAndForge):
    """`ctx.clients` of a worker with Travis CI as CI source and one forge's real client."""

    def __init__(self, travis: Any, forge_name: str, forge: Any) -> None:
        super().__init__("travis", travis, forge_name, forge)
