"""RunSuite: runs a test suite on a bbagent worker and stores its results in the master's test-result tables.

The worker runs the suite (output in the step's ``stdio`` like a shell command), parses the reports it wrote,
reruns each unexpected failure in a fresh process and classifies it (``regression``, ``intermittent``,
``known-intermittent``). The step then stores:

- one test result set per run, category ``pass_fail``, value unit ``boolean``: one result per test that ran
  (``"1"`` passed, ``"0"`` failed or errored, as the suite's own run saw it; skipped tests are left out), its name
  the test's id, its duration in ``duration_ns``;
- when failures were rerun or known intermittent, a second set, category ``rerun_classification``, value unit
  ``kind``: one result per failure, value ``"<kind> <failures>/<reruns>"`` (e.g. ``"intermittent 3/9"``), from
  which the failure rate and its Wilson interval follow.

Result: FAILURE on a regression, a failure that was not rerun, no report or a report that does not parse, or a
suite that exited non-zero while its reports name no failure; WARNINGS when every failure was intermittent or
known intermittent (the suite did not regress, but someone should look at the flaky tests: a green build would
hide them, a red one would blame the change); SUCCESS otherwise. The summary reads like
``1234 passed, 2 failed, 1 intermittent``.
"""

import time

import sqlalchemy as sa
from twisted.internet import defer

from buildbot import config
from buildbot.process import remotecommand
from buildbot.process import results

from bbagent_buildbot.common import BbagentStep
from bbagent_buildbot.common import absolute_workdir
from bbagent_buildbot.common import json_status
from bbagent_buildbot.suite_chunks import MasterDurations
from bbagent_buildbot.suite_chunks import chunk_summary
from bbagent_buildbot.suite_chunks import version_at_least

SUITE_STATUS_KEY = "suite"
"""The status key the worker's ``suite`` command sends its JSON result under."""

PASS_FAIL = ("pass_fail", "boolean")
BATCH = 3000
"""Rows per insert: Buildbot's own batch (TestResultSubmitter), within SQLite's limit on bound variables."""
RERUNS = ("rerun_classification", "kind")
CHUNK_VERSION = (1, 1)
"""The ``suite`` command's version that runs a chunk (``total_chunks``, ``tests``, ``{tests}``)."""


def summary_of(result):
    """``"1234 passed, 2 failed, 1 intermittent"`` (skipped tests and a missing result only when there are any)."""
    chunk = result.get("chunk")
    prefix = f"chunk {chunk['this']}/{chunk['total']}: " if chunk else ""
    if result.get("error") and not result.get("tests"):
        return f"{prefix}no results: {result['error']['code']}"
    c = result["counts"]
    intermittent = c["intermittent"] + c["known_intermittent"]
    failed = c["failed"] + c["errors"] - intermittent
    parts = [f"{c['passed']} passed", f"{failed} failed"]
    if intermittent:
        parts.append(f"{intermittent} intermittent")
    if c["skipped"]:
        parts.append(f"{c['skipped']} skipped")
    if result.get("error"):
        parts.append(result["error"]["code"])
    return prefix + ", ".join(parts)


def verdict_results(result):
    """The step's result for the worker's verdict (see the module's docstring)."""
    if result.get("interrupted"):
        return results.CANCELLED
    return {"pass": results.SUCCESS, "intermittent": results.WARNINGS}.get(result.get("verdict"), results.FAILURE)


class RunSuite(BbagentStep):
    """Runs ``command`` on a bbagent worker; reports are found by ``results`` (a glob relative to the workdir).

    ``repeat_failures=K`` reruns each unexpected failure K times with ``rerun``, a template naming one test:
    a string split into words without a shell (``"pytest {test}"``; ``{name}`` and ``{group}`` also work) or a
    list of words. ``durations`` names the file the worker records per-test times under
    (``BASEDIR/suites/durations/NAME.json``): True (default) uses ``<builder>-<step name>``, False records none.

    Chunks (worker ``suite`` command 1.1): ``total_chunks=N, this_chunk=K`` (``chunk_by='group'`` keeps a
    directory together) split the units ``tests`` (a list) and/or ``tests_glob`` (test files, relative to the
    workdir); the word ``{tests}`` of a list ``command`` becomes this chunk's units. ``chunk_durations``: None
    (default) balances on the durations the master keeps from earlier runs (suite_chunks.py: one snapshot per
    buildset, under ``durations_key``, default the step's name, so the chunks on several builders share them);
    a dict {unit: seconds} is sent as is (every chunk must get the same one); False cuts by count.
    """

    name = "suite"
    description = ["running", "suite"]
    descriptionDone = ["suite"]
    bbagent_command = "suite"
    bulk_insert = True
    """False stores the rows through Buildbot's own ``addTestResults`` (slower; scripts/bench compares the two)."""
    renderables = [
        "command",
        "results_glob",
        "format",
        "repeat_failures",
        "rerun",
        "env",
        "durations",
        "result_set_description",
        "total_chunks",
        "this_chunk",
        "chunk_by",
        "tests",
        "tests_glob",
        "chunk_durations",
        "durations_key",
    ]

    def __init__(
        self,
        command,
        results,
        format="auto",
        repeat_failures=0,
        rerun=None,
        stop_at_first_pass=False,
        max_confirmed=None,
        durations=True,
        env=None,
        timeout=20 * 60,
        maxTime=None,
        sigtermTime=None,
        interruptSignal=None,
        logEnviron=True,
        result_set_description=None,
        total_chunks=None,
        this_chunk=None,
        chunk_by="test",
        tests=None,
        tests_glob=None,
        chunk_durations=None,
        durations_key=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(repeat_failures, int) and repeat_failures > 0 and rerun is None:
            config.error("RunSuite: repeat_failures needs a rerun template naming one test, e.g. rerun='pytest {test}'")
        self.command = command
        self.results_glob = results
        self.format = format
        self.repeat_failures = repeat_failures
        self.rerun = rerun
        self.stop_at_first_pass = stop_at_first_pass
        self.max_confirmed = max_confirmed
        self.durations = durations
        self.env = env
        self.timeout = timeout
        self.maxTime = maxTime
        self.sigtermTime = sigtermTime
        self.interruptSignal = interruptSignal
        self.logEnviron = logEnviron
        self.result_set_description = result_set_description
        if (total_chunks is None) != (this_chunk is None):
            config.error("RunSuite: total_chunks and this_chunk go together")
        if total_chunks is not None and tests is None and tests_glob is None:
            config.error("RunSuite: total_chunks needs the tests to split: tests=[...] or tests_glob='tests/**/*.py'")
        if chunk_by not in ("test", "group"):
            config.error(f"RunSuite: chunk_by must be 'test' or 'group', got {chunk_by!r}")
        self.total_chunks = total_chunks
        self.this_chunk = this_chunk
        self.chunk_by = chunk_by
        self.tests = tests
        self.tests_glob = tests_glob
        self.chunk_durations = chunk_durations
        self.durations_key = durations_key

    def _args(self):
        args = {
            "workdir": absolute_workdir(self, self.workdir),
            "command": self.command,
            "results": self.results_glob,
            "format": self.format,
            "repeat_failures": self.repeat_failures,
            "stop_at_first_pass": self.stop_at_first_pass,
            "timeout": self.timeout,
            "logEnviron": self.logEnviron,
        }
        optional = {
            "rerun": self.rerun,
            "max_confirmed": self.max_confirmed,
            "env": self.env,
            "maxTime": self.maxTime,
            "sigtermTime": self.sigtermTime,
            "interruptSignal": self.interruptSignal,
        }
        args.update({k: v for k, v in optional.items() if v is not None})
        if self.durations is True:
            args["durations"] = f"{self.build.builder.name}-{self.name}"
        elif self.durations:
            args["durations"] = str(self.durations)
        if self._chunked():
            chunk = {"total_chunks": self.total_chunks, "this_chunk": self.this_chunk, "chunk_by": self.chunk_by}
            chunk.update({"tests": self.tests, "tests_glob": self.tests_glob})
            args.update({k: v for k, v in chunk.items() if v is not None})
        return args

    def _chunked(self):
        return self.tests is not None or self.tests_glob is not None

    def _master_durations(self):
        """The master-kept durations of this suite, when the step balances on them (suite_chunks.py)."""
        if not self._chunked() or self.chunk_durations is not None:
            return None
        return MasterDurations(self.master, f"suite-durations:{self.durations_key or self.name}")

    @defer.inlineCallbacks
    def _require_chunk_version(self):
        """None when the worker's ``suite`` command can run a chunk, else FAILURE after saying why."""
        version = self.workerVersion("suite")
        if not self._chunked() or version_at_least(version, CHUNK_VERSION):
            return None
        wanted = ".".join(str(p) for p in CHUNK_VERSION)
        log = yield self.addLog("error")
        yield log.addStderr(
            f"worker {self.getWorkerName()!r} has the 'suite' command version {version}; running a chunk "
            f"(total_chunks, tests, tests_glob) needs version {wanted} or later: upgrade its bbagent\n"
        )
        yield log.finish()
        self.descriptionDone = [f"suite: worker's 'suite' command is {version}, chunks need {wanted}"]
        return results.FAILURE

    @defer.inlineCallbacks
    def run(self):
        missing = yield self.require_bbagent_command()
        if missing is not None:
            return missing
        too_old = yield self._require_chunk_version()
        if too_old is not None:
            return too_old
        args = self._args()
        kept = self._master_durations()
        if kept is not None:
            args["chunk_durations"] = yield kept.pinned(self.build.requests[0].bsid)
        elif isinstance(self.chunk_durations, dict):
            args["chunk_durations"] = self.chunk_durations
        stdio = yield self.addLog("stdio")
        cmd = remotecommand.RemoteCommand("suite", args)
        cmd.useLog(stdio, closeWhenFinished=True)
        yield self.runCommand(cmd)
        result = json_status(cmd, SUITE_STATUS_KEY)
        if result is None:
            self.descriptionDone = ["suite: no result from the worker"]
            return results.EXCEPTION if not self.stopped else results.CANCELLED
        if kept is not None and result.get("chunk") and not result.get("interrupted"):
            yield kept.record(result["chunk"].get("unit_durations", {}), self.total_chunks or 1)
        started = time.monotonic()
        stored = yield self._store(result)
        elapsed = time.monotonic() - started
        yield self._write_summary_log(result, f"stored {stored} test results in {elapsed:.2f} s")
        self.descriptionDone = [summary_of(result)]
        return verdict_results(result)

    @defer.inlineCallbacks
    def _store(self, result):
        """Stores the tests and classifications; returns how many results were stored."""
        description = self.result_set_description or self.name
        rows = []
        passed = failed = 0
        for t in result["tests"]:
            status = t["status"]
            if status == "skip":
                continue
            row = {"value": "1" if status == "pass" else "0", "test_name": t["id"]}
            duration = t.get("duration_s")
            if duration is not None:
                row["duration_ns"] = int(duration * 1e9)
            if status == "pass":
                passed += 1
            else:
                failed += 1
            rows.append(row)
        yield self._add_result_set(description, PASS_FAIL, rows, passed, failed)
        kinds = [{"value": f"{c['kind']} {c['failures']}/{c['reruns']}", "test_name": c["test"]} for c in result["classifications"]]
        if kinds:
            yield self._add_result_set(f"{description}: reruns", RERUNS, kinds, None, None)
        return len(rows) + len(kinds)

    @defer.inlineCallbacks
    def _add_result_set(self, description, kind, rows, passed, failed):
        """One complete result set: created and completed through the data API (which sends the events), its rows
        inserted in bulk (``insert_test_results``)."""
        updates = self.master.data.updates
        builderid = yield self.build.getBuilderId()
        category, value_unit = kind
        setid = yield updates.addTestResultSet(builderid, self.build.buildid, self.stepid, description, category, value_unit)
        yield insert_test_results(self.master, builderid, setid, rows, bulk=self.bulk_insert)
        yield updates.completeTestResultSet(setid, tests_passed=passed, tests_failed=failed)

    @defer.inlineCallbacks
    def _write_summary_log(self, result, stored):
        log = yield self.addLog("summary", type="t")
        yield log.addContent(summary_text(result) + stored + "\n")
        yield log.finish()


@defer.inlineCallbacks
def insert_test_results(master, builderid, setid, rows, bulk=True):
    """Inserts test results (dicts of ``value``, ``test_name``, optional ``duration_ns``) into a result set.

    Buildbot 3.7's ``data.updates.addTestResults`` does it with one multi-row ``INSERT ... VALUES`` per batch of
    3000, which SQLAlchemy compiles anew each time: 100k results took 36 s on a loaded 2-core machine. The same
    tables filled with executemany (one prepared statement, all rows) take about 3 s. The names are looked up and
    added first, as Buildbot does (a name another step adds meanwhile is found on the retry). On a master whose
    database layer is not the one this was written against, it falls back to the data API.
    """
    model = getattr(getattr(master.db, "model", None), "test_results", None)
    if not bulk or model is None or not hasattr(master.db, "pool"):
        for at in range(0, len(rows), BATCH):
            yield master.data.updates.addTestResults(builderid, setid, rows[at:at + BATCH])
        return
    yield master.db.pool.do(_thd_insert_results, master.db.model, builderid, setid, rows)


def _thd_insert_results(conn, model, builderid, setid, rows):
    names = {r["test_name"] for r in rows}
    ids = _thd_name_ids(conn, model.test_names, builderid, names)
    missing = names.difference(ids)
    if missing:
        try:
            conn.execute(model.test_names.insert(), [{"builderid": builderid, "name": n} for n in missing])
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            # another step added some of these names meanwhile: add the rest one by one
            for n in missing.difference(_thd_name_ids(conn, model.test_names, builderid, missing)):
                try:
                    conn.execute(model.test_names.insert(), {"builderid": builderid, "name": n})
                except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                    pass
        ids.update(_thd_name_ids(conn, model.test_names, builderid, missing))
    values = [
        {
            "builderid": builderid,
            "test_result_setid": setid,
            "test_nameid": ids[r["test_name"]],
            "test_code_pathid": None,
            "line": None,
            "duration_ns": r.get("duration_ns"),
            "value": r["value"],
        }
        for r in rows
    ]
    if values:
        conn.execute(model.test_results.insert(), values)


def _thd_name_ids(conn, names_table, builderid, names):
    """{name: id} of those of ``names`` the builder already has (looked up BATCH at a time)."""
    found = {}
    names = list(names)
    query = sa.select([names_table.c.id, names_table.c.name]).where(
        names_table.c.name.in_(sa.bindparam("names", expanding=True)) & (names_table.c.builderid == builderid)
    )
    for at in range(0, len(names), BATCH):
        for row in conn.execute(query, {"names": names[at:at + BATCH]}):
            found[row.name] = row.id
    return found


def summary_text(result):
    """The ``summary`` log: the counts, each classification with its rate and interval, the failures' messages."""
    lines = [summary_of(result)]
    if result.get("chunk"):
        lines.extend(chunk_summary(result["chunk"]))
    if result.get("error"):
        lines.append(f"error: {result['error']['code']}: {result['error']['message']}")
    if result.get("stale_reports"):
        lines.append(f"{result['stale_reports']} report(s) matched but predate the run: ignored")
    for c in result["classifications"]:
        line = f"{c['kind']}: {c['test']} ({c['failures']} of {c['reruns']} reruns failed"
        if c.get("interval"):
            line += f", failure rate {c['rate']:.2f}, 95% interval {c['interval']['low']:.2f}-{c['interval']['high']:.2f}"
        lines.append(line + ")")
    classified = {c["test"] for c in result["classifications"]}
    for t in result["tests"]:
        if t["status"] in ("fail", "error") and t["id"] not in classified:
            lines.append(f"failed (not rerun): {t['id']}")
    for t in result["tests"]:
        if t["status"] in ("fail", "error") and t.get("message"):
            lines.append(f"--- {t['id']} ({t['status']})\n{t['message']}")
    return "\n".join(lines) + "\n"
