"""bot.artifacts: what reaches the parser from an artifact, and what is refused and why."""

from __future__ import annotations

import gzip
import io
import random
import stat
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pytest

from bot.artifacts import ArtifactLimits, read_artifact, read_file, unsafe_member_name
from bot.settings import ConfigError, Settings

REPORT = b'<?xml version="1.0"?><testsuite name="s"><testcase name="t"/></testsuite>'


def is_xml(head: bytes) -> bool:
    return head.lstrip().startswith(b"<")


@dataclass
class RecordingSink:
    """Behaves like the parsers' Collector: reads each stream to the end, never raises."""

    reports: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def add_stream(self, source: str, stream: BinaryIO) -> None:
        try:
            self.reports[source] = stream.read()
        except Exception as exc:  # the Collector records whatever a stream raises
            self.failures[source] = str(exc)


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def read(data: bytes, limits: ArtifactLimits | None = None, name: str = "junit"):
    sink = RecordingSink()
    errors, sizes = read_file(sink, name, io.BytesIO(data), limits, is_report=is_xml)
    return sink, {e.source: e.reason for e in errors}, sizes


SMALL = ArtifactLimits(ratio_grace_bytes=64 * 1024, max_ratio=100)


def test_a_raw_report_goes_to_the_parser_whole() -> None:
    sink, errors, sizes = read(REPORT, name="report.xml")
    assert sink.reports == {"report.xml": REPORT}
    assert errors == {}
    assert sizes.reports == 1


def test_a_gzipped_report_is_inflated_and_named_without_gz() -> None:
    sink, errors, _ = read(gzip.compress(REPORT), name="report.xml.gz")
    assert sink.reports == {"report.xml": REPORT}
    assert errors == {}


def test_zip_members_that_are_reports_are_read_and_others_skipped_silently() -> None:
    data = make_zip({
        "results/a.xml": REPORT,
        "results/b.xml": REPORT.replace(b"t", b"u"),
        "screenshot.png": b"\x89PNG\r\n\x1a\n" + bytes(5000),
        "results/": b"",
        "log.txt": b"plain text log\n" * 100,
    })
    sink, errors, sizes = read(data)
    assert sorted(sink.reports) == ["junit/results/a.xml", "junit/results/b.xml"]
    assert sink.reports["junit/results/a.xml"] == REPORT
    assert errors == {}
    assert sizes.reports == 2


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.xml", "'..' in path"),
        ("reports/../../evil.xml", "'..' in path"),
        ("/etc/evil.xml", "absolute path"),
        ("C:/evil.xml", "drive letter in name"),
        ("c:evil.xml", "drive letter in name"),
        ("reports\\evil.xml", "backslash in name"),
    ],
)
def test_zip_slip_names_are_refused_and_the_rest_still_counts(name: str, reason: str) -> None:
    assert unsafe_member_name(name) == reason
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.xml", REPORT)
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # zipfile would normalise the name given to ZipInfo()
        archive.writestr(info, REPORT)
    sink, errors, _ = read(buffer.getvalue())
    assert list(sink.reports) == ["junit/good.xml"]
    assert errors == {f"junit/{name}": f"refused: {reason}"}


def test_nul_in_a_name_is_refused_where_zipfile_has_not_cut_it_already() -> None:
    assert unsafe_member_name("evil\x00.xml") == "NUL in name"


@pytest.mark.parametrize("name", ["ok.xml", "dir/ok.xml", "a..b.xml", "..hidden/x.xml"])
def test_plain_relative_names_are_accepted(name: str) -> None:
    assert unsafe_member_name(name) is None


def test_symlink_members_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("report.xml")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("real.xml", REPORT)
    sink, errors, _ = read(buffer.getvalue())
    assert list(sink.reports) == ["junit/real.xml"]
    assert errors == {"junit/report.xml": "refused: symbolic link"}


def test_a_high_ratio_member_is_stopped_while_inflating() -> None:
    bomb = b"<" + bytes(20 * 1024 * 1024)  # looks like XML, deflates about 1000:1
    data = make_zip({"bomb.xml": bomb, "good.xml": REPORT})
    sink, errors, sizes = read(data, SMALL)
    # The parser reading the member is unwound, not told: it keeps nothing of it.
    assert errors == {"junit/bomb.xml": "refused: inflates more than 100:1 (a zip bomb?)"}
    assert sink.failures == {}
    assert sink.reports == {"junit/good.xml": REPORT}
    # Stopped within one buffer of the cap, not after inflating 20 MiB.
    assert sizes.inflated < 2 * 1024 * 1024


def test_a_member_lying_about_its_size_in_headers_is_still_counted() -> None:
    bomb = b"<" + bytes(8 * 1024 * 1024)
    data = bytearray(make_zip({"bomb.xml": bomb}))
    # Claim 1 KiB uncompressed in the central directory: the count must not believe it.
    directory = data.rfind(b"PK\x01\x02")
    struct.pack_into("<L", data, directory + 24, 1024)
    limits = ArtifactLimits(max_total_bytes=4096, ratio_grace_bytes=0, max_ratio=10_000)
    sink, errors, sizes = read(bytes(data), limits)
    # zipfile stops at the claimed size and then finds the checksum wrong: nothing is used.
    assert errors == {"junit/bomb.xml": "refused: unreadable (Bad CRC-32 for file 'bomb.xml')"}
    assert sink.reports == {}
    assert sizes.inflated == 0


def overlapping_bomb(copies: int, kernel: bytes) -> bytes:
    """The 'better zip bomb' shape: many central directory records, one compressed body."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(kernel) + compressor.flush()
    name = b"a.xml"
    crc = zlib.crc32(kernel)
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(body), len(kernel), len(name), 0
    ) + name + body
    central = b""
    for _ in range(copies):
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(body), len(kernel),
            len(name), 0, 0, 0, 0, 0, 0,
        ) + name
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, copies, copies, len(central), len(local), 0
    )
    return local + central + end


def test_overlapping_entries_are_refused_before_anything_is_inflated() -> None:
    kernel = b"<" + bytes(1024 * 1024)
    data = overlapping_bomb(50, kernel)
    # Python 3.11's zipfile itself would inflate the same body fifty times.
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert len(archive.infolist()) == 50
    sink, errors, sizes = read(data)
    assert errors == {"junit": "refused: overlapping entries (a zip bomb?)"}
    assert sink.reports == {}
    assert sizes.inflated == 0


def test_zips_inside_zips_are_opened_up_to_the_depth_limit() -> None:
    inner = make_zip({"inner.xml": REPORT})
    middle = make_zip({"inner.zip": inner, "middle.xml": REPORT})
    outer = make_zip({"middle.zip": middle, "outer.xml": REPORT})
    sink, errors, _ = read(outer, ArtifactLimits(max_depth=2))
    assert sorted(sink.reports) == ["junit/middle.zip/middle.xml", "junit/outer.xml"]
    assert errors == {"junit/middle.zip/inner.zip": "refused: nested more than 2 archives deep"}

    sink, errors, _ = read(outer, ArtifactLimits(max_depth=3))
    assert "junit/middle.zip/inner.zip/inner.xml" in sink.reports
    assert errors == {}


def test_too_many_entries_refuses_the_archive_from_its_end_record() -> None:
    data = make_zip({f"r{i}.xml": REPORT for i in range(12)})
    sink, errors, _ = read(data, ArtifactLimits(max_entries=10))
    assert errors == {"junit": "refused: 12 entries, more than 10"}
    assert sink.reports == {}


def never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make zipfile fail the test if it is asked to read an archive's directory."""

    def parse(*args: object, **kwargs: object) -> None:
        pytest.fail("zipfile parsed a central directory the end record should have refused")

    monkeypatch.setattr(zipfile, "ZipFile", parse)


def test_too_many_entries_are_refused_before_zipfile_reads_the_directory(monkeypatch) -> None:
    # zipfile holds a ZipInfo per entry: a million-entry directory costs its memory first.
    data = make_zip({f"r{i}.xml": REPORT for i in range(12)})
    never_parsed(monkeypatch)
    sink, errors, _ = read(data, ArtifactLimits(max_entries=10))
    assert errors == {"junit": "refused: 12 entries, more than 10"}
    assert sink.reports == {}


def test_a_directory_padded_beyond_its_entry_count_is_refused_unread(monkeypatch) -> None:
    # Few entries, each with a long comment: a directory sized to exhaust memory while
    # claiming an entry count under the cap.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("a.xml", "b.xml"):
            info = zipfile.ZipInfo(name)
            info.comment = b"x" * 4000
            archive.writestr(info, REPORT)
    data = buffer.getvalue()
    never_parsed(monkeypatch)
    sink, errors, _ = read(data, ArtifactLimits(max_entries=4))
    # 2 x (46-byte record + 5-byte name + 4,000-byte comment), over 4 entries' allowance
    assert errors == {"junit": "refused: central directory of 8,102 bytes is too large"}
    assert sink.reports == {}


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_a_truncated_zip_is_refused_not_crashed_on(cut: float) -> None:
    data = make_zip({"a.xml": REPORT * 50, "b.xml": REPORT * 50})
    sink, errors, _ = read(data[: int(len(data) * cut)])
    assert list(errors) == ["junit"]
    assert errors["junit"].startswith("refused: ")
    assert sink.reports == {}


def test_a_gzip_bomb_is_stopped_while_inflating() -> None:
    bomb = gzip.compress(b"<" + bytes(30 * 1024 * 1024))
    sink, errors, sizes = read(bomb, SMALL, name="report.xml.gz")
    assert errors == {"report.xml": "refused: inflates more than 100:1 (a zip bomb?)"}
    assert sink.reports == {}
    # The input (30 KB) counted once and its output up to 100 times that, not 30 MiB.
    assert sizes.inflated < len(bomb) * 101 + 128 * 1024


def test_the_total_budget_spans_members_and_the_members_left_are_named_in_one_line() -> None:
    members = {f"r{i}.xml": b"<" + bytes(300 * 1024) for i in range(10)}
    limits = ArtifactLimits(max_total_bytes=1024 * 1024)
    sink, errors, sizes = read(make_zip(members), limits)
    assert sorted(sink.reports) == ["junit/r0.xml", "junit/r1.xml", "junit/r2.xml"]
    assert errors == {
        # The fourth broke the budget; the six after it were never opened.
        "junit/r3.xml": "refused: over the budget of 1,048,576 inflated bytes "
                        "(HERALD_ARTIFACT_MAX_TOTAL_BYTES)",
        "junit": "refused: 'r4.xml' and 5 more not read: the budget of 1,048,576 inflated "
                 "bytes is spent",
    }
    assert sizes.inflated <= 1024 * 1024 + 64 * 1024


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_the_download_is_capped_while_it_streams() -> None:
    sink = RecordingSink()
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    errors, _ = await read_artifact(
        sink, "huge", endless(), ArtifactLimits(max_download_bytes=10_000), is_report=is_xml
    )
    assert [(e.source, e.reason) for e in errors] == [
        ("huge", "refused: download larger than 10,000 bytes")
    ]
    assert pulled == 11


async def test_a_refused_download_is_stopped_at_its_source() -> None:
    closed = False

    async def download() -> AsyncIterator[bytes]:
        nonlocal closed
        try:
            while True:
                yield b"x" * 1000
        finally:
            closed = True

    await read_artifact(RecordingSink(), "huge", download(),
                        ArtifactLimits(max_download_bytes=5_000), is_report=is_xml)
    assert closed


async def test_read_artifact_spools_then_reads_the_zip() -> None:
    sink = RecordingSink()
    data = make_zip({"a.xml": REPORT, "notes.md": b"# notes"})
    errors, sizes = await read_artifact(sink, "junit", chunks_of(data), is_report=is_xml)
    assert errors == []
    assert sink.reports == {"junit/a.xml": REPORT}
    assert sizes.downloaded == len(data)


def test_a_raw_artifact_that_is_no_report_is_named() -> None:
    _, errors, _ = read(b"just some text", name="notes.txt")
    assert errors == {"notes.txt": "refused: not a zip archive, a gzip file or a test report"}


def test_limits_come_from_the_environment() -> None:
    settings = Settings.from_env({
        "HERALD_ARTIFACT_MAX_BYTES": "1_000_000",
        "HERALD_ARTIFACT_MAX_ENTRIES": "50",
        "HERALD_ARTIFACT_MAX_DEPTH": "3",
    })
    limits = ArtifactLimits.from_settings(settings)
    assert (limits.max_download_bytes, limits.max_entries, limits.max_depth) == (
        1_000_000, 50, 3,
    )
    assert limits.max_ratio == ArtifactLimits().max_ratio
    with pytest.raises(ConfigError, match="HERALD_ARTIFACT_MAX_RATIO"):
        ArtifactLimits.from_settings(Settings.from_env({"HERALD_ARTIFACT_MAX_RATIO": "lots"}))


def test_with_the_real_collector_good_reports_count_and_a_bomb_is_named() -> None:
    from bot.results.parsers import Collector

    junit = (
        b'<?xml version="1.0"?><testsuite name="unit">'
        b'<testcase classname="a" name="ok"/>'
        b'<testcase classname="a" name="bad"><failure message="boom"/></testcase>'
        b"</testsuite>"
    )
    bomb = b'<?xml version="1.0"?><testsuite name="x">' + b" " * (20 * 1024 * 1024)
    data = make_zip({"unit.xml": junit, "bomb.xml": bomb, "image.png": b"\x89PNG" + bytes(99)})
    collector = Collector("run-1")
    errors, _ = read_file(collector, "test-results", io.BytesIO(data), SMALL)
    run = collector.result()
    run.errors.extend(errors)
    assert [(c.name, c.status.value) for c in run.cases()] == [("ok", "passed"), ("bad", "failed")]
    assert [(e.source, e.reason) for e in run.errors] == [
        ("test-results/bomb.xml", "refused: inflates more than 100:1 (a zip bomb?)")
    ]


class StrictSink:
    """A sink that lets read errors through: the refusal is then recorded by read_file."""

    def add_stream(self, source: str, stream: BinaryIO) -> None:
        stream.read()


def test_a_refusal_a_sink_lets_through_is_recorded_once() -> None:
    data = make_zip({"bomb.xml": b"<" + bytes(20 * 1024 * 1024)})
    errors, _ = read_file(StrictSink(), "junit", io.BytesIO(data), SMALL, is_report=is_xml)
    assert [(e.source, e.reason) for e in errors] == [
        ("junit/bomb.xml", "refused: inflates more than 100:1 (a zip bomb?)")
    ]


def test_members_named_like_reports_that_are_none_are_named_and_the_rest_still_count() -> None:
    from bot.results.model import ParseError
    from bot.results.parsers import Collector

    collector = Collector("r")
    archive = make_zip({
        "reports/TEST-a.xml": REPORT,
        "reports/settings.xml": b'<?xml version="1.0"?><settings><proxy/></settings>',
        "reports/package.json": b'{"name": "app", "version": "1.0.0"}',
        "screenshots/failure.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    })
    errors, _sizes = read_file(collector, "junit", io.BytesIO(archive))
    run = collector.result()
    assert (errors, run.totals().total) == ([], 1)
    # A screenshot is no report by its name; the XML and JSON files are, and are not.
    assert run.errors == [
        ParseError("junit/reports/settings.xml", "not a test report: root element <settings>"),
        ParseError("junit/reports/package.json",
                   "not a test report: starts with '{\"name\": \"app\", '"),
    ]


# -- one budget per job, ratios on the bytes actually read ---------------------------------


def junit_with_output(name: str, output: bytes) -> bytes:
    """A one-case JUnit report whose <system-out> holds `output`: the nested bomb's member."""
    return (
        b'<?xml version="1.0"?><testsuite name="' + name.encode() + b'">'
        b'<testcase classname="c" name="' + name.encode() + b'"><system-out>'
        + output + b"</system-out></testcase></testsuite>"
    )


def nested_bomb(zips: int, spaces: int) -> bytes:
    """The probe's shape at test size: a zip of `zips` zips, each one report of spaces."""
    return make_zip({
        f"part-{i:02}.zip": make_zip({
            f"TEST-{i:02}.xml": junit_with_output(f"t{i:02}", b" " * spaces)
        })
        for i in range(zips)
    })


def test_nested_zips_share_one_budget_across_members_and_levels() -> None:
    from bot.results.parsers import Collector

    member = 256 * 1024
    # The ratio cap is out of reach here: the budget alone must stop the twelve.
    limits = ArtifactLimits(max_total_bytes=1024 * 1024, max_ratio=1_000_000)
    collector = Collector("r")
    errors, sizes = read_file(collector, "junit", io.BytesIO(nested_bomb(12, member)), limits)
    # Three members and their small zips fit in 1 MiB; the fourth passes it while inflating.
    assert sorted(c.name for c in collector.result().cases()) == ["t00", "t01", "t02"]
    assert [(e.source, e.reason) for e in errors] == [
        ("junit/part-03.zip/TEST-03.xml",
         "refused: over the budget of 1,048,576 inflated bytes (HERALD_ARTIFACT_MAX_TOTAL_BYTES)"),
        ("junit", "refused: 'part-04.zip' and 7 more not read: the budget of 1,048,576 "
                  "inflated bytes is spent"),
    ]
    assert sizes.inflated <= 1024 * 1024 + 64 * 1024


def test_each_member_of_a_nested_bomb_is_stopped_by_its_ratio_at_the_grace() -> None:
    from bot.results.parsers import Collector

    grace = 128 * 1024
    limits = ArtifactLimits(max_ratio=200, ratio_grace_bytes=grace)
    collector = Collector("r")
    errors, sizes = read_file(collector, "junit", io.BytesIO(nested_bomb(12, 4 * 1024 * 1024)),
                              limits)
    assert {e.source: e.reason for e in errors} == {
        f"junit/part-{i:02}.zip/TEST-{i:02}.xml": "refused: inflates more than 200:1 (a zip bomb?)"
        for i in range(12)
    }
    assert collector.result().totals().total == 0
    # Each stopped at 200 times the ~4 KB read for it (zipfile reads a small member's
    # compressed bytes in one go), not after its 4 MiB.
    assert sizes.inflated < 12 * 1024 * 1024


def test_a_central_directory_overstating_compress_size_buys_no_ratio() -> None:
    bomb = b"<" + bytes(20 * 1024 * 1024)  # deflates to ~20 KB, about 1000:1
    data = make_zip({"bomb.xml": bomb})
    directory = data.rfind(b"PK\x01\x02")
    end = data.rfind(b"PK\x05\x06")
    # 300 KB of filler between the member and the central directory, claimed by the member:
    # its stated ratio becomes ~65:1, under the cap of 100, and nothing overlaps.
    filler = bytes(random.Random(0).randbytes(300 * 1024))
    (claimed,) = struct.unpack_from("<L", data, directory + 20)
    forged = bytearray(data[:directory] + filler + data[directory:])
    directory += len(filler)
    end += len(filler)
    struct.pack_into("<L", forged, directory + 20, claimed + len(filler))
    struct.pack_into("<L", forged, 14 + 4, claimed + len(filler))  # the local header agrees
    struct.pack_into("<L", forged, end + 16, directory)  # where the directory now starts
    with zipfile.ZipFile(io.BytesIO(bytes(forged))) as archive:
        assert archive.getinfo("bomb.xml").compress_size * 100 > len(bomb)
    limits = ArtifactLimits(max_ratio=100, ratio_grace_bytes=1024 * 1024)
    sink, errors, sizes = read(bytes(forged), limits)
    assert errors == {"junit/bomb.xml": "refused: inflates more than 100:1 (a zip bomb?)"}
    assert sink.reports == {}
    # Counted on the ~20 KB actually read (plus one read ahead), not the 320 KB claimed.
    assert sizes.inflated < 10 * 1024 * 1024


def honest_text(size: int) -> bytes:
    """Log-like text that deflates about 2:1, far under any ratio cap."""
    return b"<" + random.Random(1).randbytes(size // 2).hex().encode()


def test_an_honest_member_under_the_ratio_cap_is_refused_by_the_budget() -> None:
    limits = ArtifactLimits(max_total_bytes=1024 * 1024)
    sink, errors, _ = read(make_zip({"small.xml": REPORT,
                                     "big.xml": honest_text(3 * 1024 * 1024)}), limits)
    assert errors == {"junit/big.xml": "refused: over the budget of 1,048,576 inflated bytes "
                                       "(HERALD_ARTIFACT_MAX_TOTAL_BYTES)"}
    assert sink.reports == {"junit/small.xml": REPORT}


async def test_artifacts_of_one_job_share_its_budget() -> None:
    from bot.artifacts import ArchiveBudget

    limits = ArtifactLimits(max_total_bytes=1024 * 1024)
    budget = ArchiveBudget(limits.max_total_bytes)
    member = b"<" + bytes(600 * 1024)
    sink = RecordingSink()
    first, sizes = await read_artifact(sink, "unit", chunks_of(make_zip({"a.xml": member})),
                                       limits, is_report=is_xml, budget=budget)
    assert (first, budget.used) == ([], sizes.inflated)
    second, _ = await read_artifact(sink, "e2e", chunks_of(make_zip({"b.xml": member})),
                                    limits, is_report=is_xml, budget=budget)
    # Alone, each fits; together they pass the job's 1 MiB.
    assert list(sink.reports) == ["unit/a.xml"]
    assert [(e.source, e.reason) for e in second] == [
        ("e2e/b.xml", "refused: over the budget of 1,048,576 inflated bytes "
                      "(HERALD_ARTIFACT_MAX_TOTAL_BYTES)")
    ]
    assert budget.remaining == 0

    downloaded = False

    async def third_artifact() -> AsyncIterator[bytes]:
        nonlocal downloaded
        downloaded = True
        yield make_zip({"c.xml": REPORT})

    third, _ = await read_artifact(sink, "lint", third_artifact(), limits,
                                   is_report=is_xml, budget=budget)
    assert [(e.source, e.reason) for e in third] == [
        ("lint", "refused: not read: the budget of 1,048,576 inflated bytes is spent")
    ]
    assert not downloaded


def test_read_file_takes_the_job_s_remaining_bytes_and_reports_what_it_used() -> None:
    data = make_zip({"a.xml": REPORT})
    sink = RecordingSink()
    _, alone = read_file(sink, "junit", io.BytesIO(data), is_report=is_xml)
    errors, _ = read_file(sink, "junit", io.BytesIO(data), is_report=is_xml,
                          remaining=alone.inflated - 1)
    assert alone.inflated == len(REPORT)
    assert [e.reason for e in errors] == [
        "refused: over the budget of 536,870,912 inflated bytes "
        "(HERALD_ARTIFACT_MAX_TOTAL_BYTES)"
    ]


GO_EVENTS = b"".join(
    b'{"Action":"pass","Package":"app","Test":"TestOk%d","Elapsed":0.01}\n' % i
    for i in range(20_000)  # 1.4 MB: more than the reader's first 1 MiB read
)


@pytest.mark.parametrize(
    ("name", "head"),
    [
        # lxml has read the cases before the cap; go test -json's reader would keep those
        # it read before a read error. Neither may keep a refused member's.
        ("TEST-cut.xml", b'<?xml version="1.0"?><testsuite name="s">'
                         + b'<testcase classname="c" name="early"/>' * 2000),
        ("go-test.json", GO_EVENTS),
    ],
)
def test_a_refused_member_s_partial_cases_are_dropped_and_the_others_still_count(
    name: str, head: bytes
) -> None:
    from bot.results.parsers import Collector

    cut = head + honest_text(4 * 1024 * 1024)
    limits = ArtifactLimits(max_total_bytes=4 * 1024 * 1024)
    data = make_zip({"TEST-ok.xml": REPORT, name: cut})
    collector = Collector("r")
    errors, _ = read_file(collector, "junit", io.BytesIO(data), limits)
    run = collector.result()
    # What this could hide: failures among the cut member's first cases go unlisted; the
    # refusal naming it is what the report shows instead, never a plain success.
    assert [(c.name, c.source) for c in run.cases()] == [("t", "junit/TEST-ok.xml")]
    assert [(e.source, e.reason) for e in [*run.errors, *errors]] == [
        (f"junit/{name}", "refused: over the budget of 4,194,304 inflated bytes "
                          "(HERALD_ARTIFACT_MAX_TOTAL_BYTES)")
    ]


def test_what_the_parser_of_a_refused_member_held_is_freed_at_once() -> None:
    import gc

    from lxml import etree

    from bot.results.parsers import Collector

    gc.collect()  # what earlier tests left behind is not this test's business
    data = make_zip({"TEST-huge.xml": junit_with_output("huge", b" " * (20 * 1024 * 1024))})
    limits = ArtifactLimits(max_total_bytes=10 * 1024 * 1024, max_ratio=1_000_000)
    collector = Collector("r")
    errors, _ = read_file(collector, "junit", io.BytesIO(data), limits)
    assert [e.source for e in errors] == ["junit/TEST-huge.xml"]
    # An lxml parser stopped mid-document is a reference cycle holding the text read so far
    # (10 MiB here); left to Python's rare full collections, twelve refused members of a
    # nested bomb once added up to gigabytes.
    assert not [o for o in gc.get_objects() if isinstance(o, etree.XMLPullParser)]
