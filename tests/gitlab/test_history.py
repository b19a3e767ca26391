"""Reports that know the past, on GitLab end to end: a merge request pipeline compared with
the last pipeline of its name on the target branch, through the real Redis history."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import zipped
from tests.fakes.gitlab import FakeGitLab
from tests.gitlab.test_end_to_end import Herald, pipeline_hook, report_note
from tests.gitlab.test_end_to_end import herald as herald  # the fixture
from tests.gitlab.world import OLD_SHA, PROJECT, Jobs

pytestmark = pytest.mark.e2e

MAIN_PIPELINE = 1092000
#: The integration suite as `main` last ran it: refunds passed there.
PASSING_INTEGRATION = (
    b'<testsuite name="integration" tests="2">'
    b'<testcase classname="payments.Gateway" name="test_charges_card" time="1.5"/>'
    b'<testcase classname="payments.Gateway" name="test_refunds" time="0.7"/>'
    b"</testsuite>")


def main_pipeline(gitlab: FakeGitLab) -> dict[str, Any]:
    """A push pipeline of `main`, of the same name as the merge request's, and its hook."""
    gitlab.add_pipeline(PROJECT, MAIN_PIPELINE, sha=OLD_SHA, ref="main", status="success",
                        source="push", name="MR pipeline")
    gitlab.add_job(MAIN_PIPELINE, "integration-tests", status="success",
                   artifact=zipped({"reports/integration.xml": PASSING_INTEGRATION}))
    hook = pipeline_hook(MAIN_PIPELINE, status="success")
    hook["object_attributes"].update(ref="main", sha=OLD_SHA, source="push")
    hook.pop("merge_request")
    return hook


async def test_a_merge_request_note_names_what_is_new_since_main(
    herald: Herald, gitlab: FakeGitLab, world: Jobs
) -> None:
    assert (await herald.deliver("Pipeline Hook", main_pipeline(gitlab))).status_code == 202
    await herald.work()
    assert (await herald.deliver("Pipeline Hook", pipeline_hook())).status_code == 202
    await herald.work()

    body = report_note(gitlab)["body"]
    assert "Compared with main" in body
    assert body.index("Compared with main") < body.index("Failed Tests")
    assert "payments.Gateway.test\\_refunds" in body.split("New failures")[1].split("\n")[0]
