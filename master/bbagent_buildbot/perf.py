"""``PerfTest``: a performance test run by bbagent's ``perf`` remote command.

The worker runs the replicates, applies the Talos filters and computes the statistics (bootstrap CI of the median,
CV, MAD, outliers); the step log gets the progress and the ``PERFHERDER_DATA`` line, and the step stores the
values in Buildbot's own test-result tables: one ``performance`` result set per subtest (value_unit: the
subtest's unit), holding the filtered value under the subtest's name and each replicate under
"<subtest> replicate <i>". The summary names the value, the median and its 95% CI. A failed run (noisy host, a
failing replicate) fails the step with the reason; a worker without the command fails it clearly too.
"""

import json

from twisted.internet import defer

from buildbot.process import remotecommand
from buildbot.process import results

from bbagent_buildbot.common import BbagentStep
from bbagent_buildbot.common import absolute_workdir
from bbagent_buildbot.common import json_status

# step argument -> the perf command's argument
_OPTIONAL_ARGS = (
    ("repeat", "repeat"),
    ("warmup", "warmup"),
    ("filter", "filter"),
    ("quiet_host", "quiet_host"),
    ("recheck_every", "recheck_every"),
    ("target_ci", "target_ci"),
    ("min_replicates", "min"),
    ("max_replicates", "max"),
    ("check_every", "check_every"),
    ("timeout", "timeout"),
    ("env", "env"),
    ("out", "out"),
    ("framework", "framework"),
)


def _fmt(value):
    return f"{value:.6g}"


def _ci_label(*cis):
    """'95% CI', or the lower coverage of an interval from too few values for 95% (fewer than 6 kept)."""
    coverage = min(ci.get("coverage", 1.0) for ci in cis)
    confidence = max(ci.get("confidence", 0.95) for ci in cis)
    return f"{confidence * 100:.0f}% CI" if coverage >= confidence else f"{coverage * 100:.1f}% CI"


class PerfTest(BbagentStep):
    """Runs ``command`` (a list or a shell string) as replicates of the perf suite ``suite`` on a bbagent worker.

    Options mirror ``bbagent perf run``: repeat, warmup, filter ('ignore_first:5,median'), quiet_host
    ('wait' | 'refuse' | 'off') with recheck_every (replicates between host samples), target_ci with
    min_replicates/max_replicates/check_every (adaptive), timeout (seconds per replicate), env, out (a directory
    for perfherder-data.json and perf-stats.json), framework.
    """

    name = "perf"
    bbagent_command = "perf"
    renderables = ["suite", "command"] + [step_arg for step_arg, _ in _OPTIONAL_ARGS]

    def __init__(self, suite, command, **kwargs):
        for step_arg, _ in _OPTIONAL_ARGS:
            setattr(self, step_arg, kwargs.pop(step_arg, None))
        super().__init__(**kwargs)
        self.suite = suite
        self.command = command

    def _args(self):
        args = {"workdir": absolute_workdir(self, self.workdir), "name": self.suite, "command": self.command}
        for step_arg, cmd_arg in _OPTIONAL_ARGS:
            value = getattr(self, step_arg)
            if value is not None:
                args[cmd_arg] = value
        return args

    @defer.inlineCallbacks
    def run(self):
        missing = yield self.require_bbagent_command()
        if missing is not None:
            return missing
        stdio = yield self.addLog("stdio")
        cmd = remotecommand.RemoteCommand("perf", self._args(), stdioLogName="stdio")
        cmd.useLog(stdio, False)
        yield self.runCommand(cmd)
        doc = json_status(cmd, "perf")
        if doc is None:
            self.descriptionDone = [f"perf {self.suite}: no result from the worker"]
            return results.FAILURE
        if "error" in doc:
            self.descriptionDone = [f"perf {self.suite}: {doc['error']['message'][:200]}"]
            return results.FAILURE
        result = doc["result"]
        yield self.addCompleteLog("perfherder-data.json", json.dumps(doc["perfherder"], indent=2) + "\n")
        yield self._store(result)
        self.descriptionDone = [self._summary(result)]
        return results.SUCCESS if cmd.rc == 0 else results.FAILURE

    @defer.inlineCallbacks
    def _store(self, result):
        for sub in result["subtests"]:
            ci = sub["ci"]
            interval = f"{_ci_label(ci)} {_fmt(ci['low'])}..{_fmt(ci['high'])}"
            description = f"{result['suite']}/{sub['name']} ({result['filter']}; {interval})"
            setid = yield self.addTestResultSet(description, "performance", sub["unit"] or "value")
            self.addTestResult(setid, repr(float(sub["value"])), test_name=sub["name"])
            for i, value in enumerate(sub["replicates"], start=1):
                self.addTestResult(setid, repr(float(value)), test_name=f"{sub['name']} replicate {i}")

    @staticmethod
    def _summary(result):
        subs = result["subtests"]
        if len(subs) == 1:
            s = subs[0]
            return (
                f"{result['suite']}: {_fmt(s['value'])}{' ' + s['unit'] if s['unit'] else ''} "
                f"(median {_fmt(s['stats']['median'])}, "
                f"{_ci_label(s['ci'])} ±{s['ciHalfWidthPercent']:.2f}%, CV {s['stats']['cvPercent']:.2f}%, "
                f"n={s['stats']['n']})"
            )
        value = "n/a" if result["value"] is None else _fmt(result["value"])
        widest = max(s["ciHalfWidthPercent"] for s in subs)
        label = _ci_label(*(s["ci"] for s in subs))
        return f"{result['suite']}: {len(subs)} subtests, geometric mean {value} (widest {label} ±{widest:.2f}%)"
