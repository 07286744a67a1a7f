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

from twisted.internet import defer

from buildbot import config
from buildbot.process import remotecommand
from buildbot.process import results

from bbagent_buildbot.common import BbagentStep
from bbagent_buildbot.common import json_status

SUITE_STATUS_KEY = "suite"
"""The status key the worker's ``suite`` command sends its JSON result under."""

PASS_FAIL = ("pass_fail", "boolean")
RERUNS = ("rerun_classification", "kind")


def builder_workdir(step, workdir):
    """The ``workdir`` argument for a bbagent command, as the master's protocol would send it for ``shell``.

    Over PB the worker joins a relative workdir onto the builder's directory itself; Buildbot 3.7's msgpack
    protocol does that join on the master, but only for the commands it knows. For ours the step does it.
    """
    conn = step.build.conn
    basedirs = getattr(conn, "builder_basedirs", None)
    name = step.build.builder.name
    if basedirs is None or name not in basedirs:
        return workdir
    return conn.path_module.join(basedirs[name], workdir)


def summary_of(result):
    """``"1234 passed, 2 failed, 1 intermittent"`` (skipped tests and a missing result only when there are any)."""
    if result.get("error") and not result.get("tests"):
        return f"no results: {result['error']['code']}"
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
    return ", ".join(parts)


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
    """

    name = "suite"
    description = ["running", "suite"]
    descriptionDone = ["suite"]
    bbagent_command = "suite"
    renderables = ["command", "results_glob", "format", "repeat_failures", "rerun", "env", "durations", "result_set_description"]

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

    def _args(self):
        args = {
            "workdir": builder_workdir(self, self.workdir),
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
        return args

    @defer.inlineCallbacks
    def run(self):
        missing = yield self.require_bbagent_command()
        if missing is not None:
            return missing
        stdio = yield self.addLog("stdio")
        cmd = remotecommand.RemoteCommand("suite", self._args())
        cmd.useLog(stdio, closeWhenFinished=True)
        yield self.runCommand(cmd)
        result = json_status(cmd, SUITE_STATUS_KEY)
        if result is None:
            self.descriptionDone = ["suite: no result from the worker"]
            return results.EXCEPTION if not self.stopped else results.CANCELLED
        yield self._store(result)
        yield self._write_summary_log(result)
        self.descriptionDone = [summary_of(result)]
        return verdict_results(result)

    @defer.inlineCallbacks
    def _store(self, result):
        description = self.result_set_description or self.name
        setid = yield self.addTestResultSet(description, *PASS_FAIL)
        add = self.addTestResult
        for t in result["tests"]:
            status = t["status"]
            if status == "skip":
                continue
            duration = t.get("duration_s")
            add(
                setid,
                "1" if status == "pass" else "0",
                test_name=t["id"],
                duration_ns=None if duration is None else int(duration * 1e9),
            )
        if result["classifications"]:
            rerun_set = yield self.addTestResultSet(f"{description}: reruns", *RERUNS)
            for c in result["classifications"]:
                add(rerun_set, f"{c['kind']} {c['failures']}/{c['reruns']}", test_name=c["test"])

    @defer.inlineCallbacks
    def _write_summary_log(self, result):
        log = yield self.addLog("summary", type="t")
        yield log.addContent(summary_text(result))
        yield log.finish()


def summary_text(result):
    """The ``summary`` log: the counts, each classification with its rate and interval, the failures' messages."""
    lines = [summary_of(result)]
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
