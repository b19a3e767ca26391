"""JUnit XML in the dialects real tools write.

One parser covers them all, because they differ only in which optional parts they use:

- a single `<testsuite>` root (Maven Surefire/Failsafe, Gradle, Mocha) or `<testsuites>`
  around suites, nested to any depth (PHPUnit, Bazel, jest-junit, go-junit-report,
  gotestsum, pytest);
- `file`/`line` on `<testcase>` (pytest, PHPUnit, jest-junit with addFileAttribute);
- `<failure>`, `<error>` (xunit-style runners put both) and `<skipped>`, with the message in
  an attribute, in the body, or both;
- Surefire's and Gradle's reruns: `flakyFailure`/`flakyError` (passed in the end) and
  `rerunFailure`/`rerunError` (failed every time), each with its own `stackTrace`;
- pytest-rerunfailures' reruns, each an empty `<testcase>` of the same name before the final
  one (see `_fold_pytest_reruns`).

Suite totals (`tests=`, `failures=`) are never read: they are often wrong, and the model
counts cases. Schema: https://github.com/testmoapp/junitxml and Surefire's
surefire-test-report.xsd.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from lxml import etree

from bot.results.compact import CaseList
from bot.results.model import Attempt, Status, Suite, TestCase

from . import _values
from ._base import KEEP_OUTPUT_FOR_PASSED, FormatParser, discard

PASSED, FAILED, ERROR, SKIPPED = Status.PASSED, Status.FAILED, Status.ERROR, Status.SKIPPED
_INFINITY = float("inf")
_RANK = {Status.PASSED: 0, Status.SKIPPED: 1, Status.FAILED: 2, Status.ERROR: 3}
_OUTCOMES = {"failure": Status.FAILED, "error": Status.ERROR, "skipped": Status.SKIPPED}
_RERUNS = {
    "flakyFailure": Status.FAILED,
    "flakyError": Status.ERROR,
    "rerunFailure": Status.FAILED,
    "rerunError": Status.ERROR,
}
#: `status` attribute values (Bazel, some JS reporters) that mean "did not run" when no child
#: element says otherwise.
_NOT_RUN = frozenset({"skipped", "skip", "notrun", "not_run", "disabled", "ignored", "pending"})
_PROPERTY_VALUE_LIMIT = 2048
#: pytest's names for its suite (`junit_suite_name`'s default) and for the root around it.
_PYTEST_SUITE, _PYTEST_ROOT = "pytest", "pytest tests"
RERUN_MESSAGE = "rerun by pytest-rerunfailures; the report keeps no details of this attempt"
_PURGE_EVERY = 256
#: lxml's items() looks each value up by name from the first attribute, so it costs the
#: square of the count: 383 s for one <testcase> with 200,000 attributes. Above this many
#: (writers put 3 to 8), the six attributes a case needs are read one by one instead, each
#: lookup linear. Nothing is refused or lost: the other attributes are never read anyway.
_MAX_ITEMS = 64

#: The fields the hot loop sets one by one instead of calling TestCase's __init__. A field
#: added to the model without being set there would leave cases missing an attribute, so
#: the mismatch stops the import instead.
_CASE_FIELDS = (
    "name", "classname", "suite", "status", "duration", "file", "line", "message",
    "failure_type", "stack_trace", "stdout", "stderr", "attempts", "source", "origin",
)
if tuple(f.name for f in dataclasses.fields(TestCase)) != _CASE_FIELDS:
    raise ImportError("TestCase's fields changed: update JUnitParser.handle_events")


def _attributes(
    items: list[tuple[str, str]],
) -> tuple[str | None, str | None, str | None, str | None, str | None, str | None]:
    """name, classname, time, file, line and status of a <testcase>, each None if absent."""
    name = classname = raw_time = file = raw_line = status = None
    for key, value in items:
        if key == "name":
            name = value
        elif key == "classname":
            classname = value
        elif key == "time":
            raw_time = value
        elif key == "file":
            file = value
        elif key == "line":
            raw_line = value
        elif key == "class" and not classname:  # PHPUnit writes both; classname wins
            classname = value
        elif key == "status":
            status = value
    return name, classname, raw_time, file, raw_line, status


def _attributes_by_name(
    element: etree._Element,
) -> tuple[str | None, str | None, str | None, str | None, str | None, str | None]:
    """What `_attributes` reads, for an element with too many attributes for items()."""
    get = element.get
    return (get("name"), get("classname") or get("class"), get("time"), get("file"),
            get("line"), get("status"))


class JUnitParser(FormatParser):
    # Outcome and rerun elements are asked for too: seeing them go by is how a case is known
    # to need its children read, so the common passed case never walks its children.
    TAGS = ("testcase", "testsuite", "testsuites", *_OUTCOMES, *_RERUNS)
    EVENTS = ("end",)

    def __init__(self, source: str, text_limit: int) -> None:
        super().__init__(source, text_limit)
        # Suites that have cases, by their element; the element proxies are kept alive here
        # so lxml hands back the same object and `is` comparisons hold.
        self._open: dict[etree._Element, Suite] = {}
        self._parent: etree._Element | None = None
        self._suite: Suite | None = None
        self._marked = False  # an outcome/rerun element ended since the last case
        self._pending = 0  # cleared cases not yet deleted from their parent
        # The file's own total: the root's `time`, else the sum of its top-level suites'
        # (None once one of them has none). Nested suites' times are never added.
        self._top_level_time: float | None = 0.0
        self._pytest_suites: list[Suite] = []

    def handle_events(self, events: Iterator[tuple[str, etree._Element]]) -> None:
        # The hot loop: runs once per case, so it is written out inline with locals (no
        # helper call for a passed case) to stay close to the speed of libxml2 itself.
        parent_seen, suite, marked = self._parent, self._suite, self._marked
        pending = self._pending
        strings, source = self._strings, self.source
        # The current suite's list and name, so a case costs no attribute lookups on it.
        cases = suite.cases if suite is not None else CaseList()
        suite_name = suite.name if suite is not None else ""
        last_class = ""
        new, infinity, purge_every = object.__new__, _INFINITY, _PURGE_EVERY
        for _event, element in events:
            tag = element.tag
            if tag != "testcase":
                if tag == "testsuite" or tag == "testsuites":
                    if element is parent_seen:
                        parent_seen = suite = None
                    self._suite_end(element)
                else:
                    marked = True
                continue
            parent = element.getparent()
            if parent is not parent_seen or suite is None:
                suite = self._open.get(parent) if parent is not None else None
                if suite is None:
                    suite = self._open_suite(parent)
                parent_seen, pending = parent, 0
                cases, suite_name = suite.cases, suite.name
            # One items() call beats a get() per attribute (each get re-encodes its key and
            # searches the attributes again), and also finds the absent ones for free; but
            # it costs the square of their count, hence _MAX_ITEMS.
            file = raw_line = status = None
            if len(element.attrib) > _MAX_ITEMS:
                name, classname, raw_time, file, raw_line, status = _attributes_by_name(element)
            elif len(items := element.items()) == 3:
                # Surefire, Gradle and most writers put exactly name, classname and time
                # (pytest and jest-junit: classname first); unpacking those beats the loop.
                (key, name), (key2, classname), (key3, raw_time) = items
                if key3 != "time" or not (
                    (key == "name" and key2 == "classname")
                    or (key == "classname" and key2 == "name")
                ):
                    name, classname, raw_time, file, raw_line, status = _attributes(items)
                elif key == "classname":
                    name, classname = classname, name
            else:
                name, classname, raw_time, file, raw_line, status = _attributes(items)
            try:
                duration = float(raw_time) if raw_time else 0.0
            except ValueError:
                duration = _values.seconds(raw_time)
            if not 0.0 <= duration < infinity:  # NaN, negative, inf
                duration = 0.0
            # Cases of one class come together: comparing with the last class name is
            # cheaper than hashing each fresh copy to find the shared one.
            if classname != last_class:
                last_class = strings.setdefault(classname, classname) if classname else ""
            # Filled slot by slot: calling the dataclass __init__ (a Python frame with 14
            # arguments) costs ~40% more. _CASE_FIELDS checks at import that this sets
            # every field TestCase has.
            case = new(TestCase)
            case.name = name or ""
            case.classname = last_class
            case.suite = suite_name
            case.status = PASSED
            case.duration = duration
            case.file = strings.setdefault(file, file) if file else None
            case.line = _values.integer(raw_line) if raw_line else None
            case.message = None
            case.failure_type = None
            case.stack_trace = None
            case.stdout = None
            case.stderr = None
            case.attempts = []
            case.source = source
            case.origin = None
            if marked:
                self._outcome(case, element)
                marked = False
            elif status and status.lower() in _NOT_RUN:
                case.status = SKIPPED
            cases.append(case)
            element.clear(False)
            # The emptied elements before this one go in batches: one index() and one slice
            # delete per _PURGE_EVERY cases costs less than a sibling check per case.
            pending += 1
            if pending >= purge_every and parent is not None:
                del parent[: parent.index(element)]
                pending = 0
        self._parent, self._suite, self._marked = parent_seen, suite, marked
        self._pending = pending

    def _outcome(self, case: TestCase, element: etree._Element) -> None:
        """Fill in a case that has failure, error, skipped or rerun children."""
        status = PASSED
        decisive: etree._Element | None = None
        stdout: etree._Element | None = None
        stderr: etree._Element | None = None
        for child in element:
            tag = child.tag
            if tag == "system-out":
                stdout = child
            elif tag == "system-err":
                stderr = child
            else:
                outcome = _OUTCOMES.get(tag)  # type: ignore[call-overload]
                if outcome is not None:
                    if _RANK[outcome] > _RANK[status]:
                        status, decisive = outcome, child
                elif tag in _RERUNS:
                    rerun = self._attempt(child, _RERUNS[tag])  # type: ignore[index]
                    case.attempts.append(rerun)
        if decisive is not None:
            body = self.text(decisive)
            case.message = self.attribute(decisive.get("message")) or _values.first_line(body)
            if status is not SKIPPED:
                case.failure_type = decisive.get("type") or None
                case.stack_trace = body
        case.status = status
        if KEEP_OUTPUT_FOR_PASSED or status is FAILED or status is ERROR:
            if stdout is not None:
                case.stdout = self.text(stdout)
            if stderr is not None:
                case.stderr = self.text(stderr)

    def _attempt(self, element: etree._Element, status: Status) -> Attempt:
        trace = None
        for child in element:
            if child.tag == "stackTrace":
                trace = self.text(child)
        if trace is None:
            trace = _values.clean(element.text, self.text_limit)
        return Attempt(
            status=status,
            duration=_values.seconds(element.get("time")),
            message=self.attribute(element.get("message")) or _values.first_line(trace),
            failure_type=element.get("type") or None,
            stack_trace=trace,
        )

    def _open_suite(self, element: etree._Element | None) -> Suite:
        if element is None:  # a lone <testcase> root: no suite around it
            suite = Suite(name="", source=self.source)
            self.suites.append(suite)
            return suite
        get = element.get
        suite = Suite(
            name=self.shared(get("name") or ""),
            duration=_values.optional_seconds(get("time")),
            timestamp=_values.timestamp(get("timestamp")),
            hostname=get("hostname") or None,
            source=self.source,
        )
        self._read_properties(element, suite)
        root = element.getparent()
        if suite.name == _PYTEST_SUITE or (root is not None and root.get("name") == _PYTEST_ROOT):
            self._pytest_suites.append(suite)
        self._open[element] = suite
        self.suites.append(suite)
        return suite

    def finish(self) -> None:
        for suite in self._pytest_suites:
            _fold_pytest_reruns(suite)

    def _read_properties(self, element: etree._Element, suite: Suite) -> None:
        # By the time a suite's first case is handled, the rest of the parsed chunk is
        # already below it (dozens of cases); iterchildren(tag) matches in C instead of
        # making a Python element for each of them.
        for child in element.iterchildren("properties"):
            for prop in child.iterchildren("property"):
                name = prop.get("name")
                if name:
                    value = prop.get("value")
                    if value is None:
                        value = prop.text or ""
                    suite.properties[name] = value[:_PROPERTY_VALUE_LIMIT]

    def _suite_end(self, element: etree._Element) -> None:
        parent = element.getparent()
        if parent is None:
            own = _values.optional_seconds(element.get("time"))
            if own is not None:
                self.duration = own
            elif element.tag == "testsuites" and self._top_level_time is not None:
                self.duration = self._top_level_time
        elif parent.getparent() is None and self._top_level_time is not None:
            time = _values.optional_seconds(element.get("time"))
            self._top_level_time = None if time is None else self._top_level_time + time
        suite = self._open.pop(element, None)
        if suite is not None and not suite.properties:
            self._read_properties(element, suite)  # some writers put properties last
        if element is self._parent:
            self._parent = self._suite = None
        discard(element)


def _fold_pytest_reruns(suite: Suite) -> None:
    """Make pytest-rerunfailures' reruns attempts of the execution they led to.

    pytest writes each rerun as a `<testcase>` of its own: same classname, name, file and
    line as the final one, written before it, with its `time` and no outcome element at all
    (the attempt's failure is not in the file). Read as written, a test that failed twice and
    then passed would count three passes. Within one pytest suite those attributes name one
    test (pytest makes parametrised ids unique), so an empty case followed by a later case of
    the same test is a rerun: it becomes a failed attempt of the next execution of that test.

    What this could hide: nothing that failed. Any case with an outcome element (a failure,
    a teardown error pytest writes as a second `<testcase>`, a subtest failure) stays its own
    execution, and the last case of each test is always kept. The one misreading is a test
    pytest really ran twice and passed both times (`--keep-duplicates` naming a file twice):
    it shows as flaky instead of as two passes. Other producers' same-named cases (TestNG
    data providers, JUnit 5 invocations) are never folded; they are not in a pytest suite.
    """
    cases = suite.cases
    # Hashes rather than the keys: memory stays small however many cases. The list is read
    # front to back a few times, never by index (a packed `CaseList` is walked to index).
    last: dict[int, int] = {}
    repeated: set[int] = set()
    for index, case in enumerate(cases):
        key_hash = hash((case.classname, case.name, case.file, case.line))
        if key_hash in last:
            repeated.add(key_hash)
        last[key_hash] = index
    if not repeated:
        return  # every test once: nothing was rerun
    # The final case of each repeated test, to tell a shared hash from a shared test.
    finals = {last[key_hash] for key_hash in repeated}
    final_keys: dict[int, tuple[str, str, str | None, int | None]] = {
        index: (case.classname, case.name, case.file, case.line)
        for index, case in enumerate(cases) if index in finals
    }
    kept = CaseList()
    reruns: dict[tuple[str, str, str | None, int | None], list[TestCase]] = {}
    for index, case in enumerate(cases):
        key = (case.classname, case.name, case.file, case.line)
        final_at = last[hash(key)]
        if (
            index != final_at
            and case.status is PASSED
            and case.message is None
            and not case.attempts
            and final_keys.get(final_at) == key
        ):
            reruns.setdefault(key, []).append(case)
            continue
        earlier = reruns.pop(key, None)
        if earlier:
            case.attempts[:0] = [
                Attempt(status=FAILED, duration=rerun.duration, message=RERUN_MESSAGE)
                for rerun in earlier
            ]
        kept.append(case)
    suite.cases = kept
