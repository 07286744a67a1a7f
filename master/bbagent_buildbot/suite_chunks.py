"""The durations a chunked ``RunSuite`` is balanced on, kept by the master.

Every chunk of a suite must be cut from the same durations, or two chunks overlap and a test runs twice or never.
A worker's own durations file sees only the chunks that worker ran, and changes after each of them, so the master
keeps them: each chunked run sends back its units' times (``chunk.unit_durations``: seconds per test file), which
are merged here into the last few samples per unit (the median is used, as the worker's durations file does), and
the durations handed to the chunks of one buildset are pinned the first time one of its chunks asks: the chunks
of one buildset (a scheduler triggering one builder per chunk, or one build running every chunk) are cut from one
snapshot, whatever finishes in between. Kept in the master's object state (``master.db.state``), under the
suite's key.
"""

import statistics

from twisted.internet import defer

STATE_CLASS = "bbagent_buildbot.suite.RunSuite"
KEEP_SAMPLES = 5
"""Samples kept per unit: the median of 5 ignores up to 2 outliers (as agent/suites/durations.ts)."""
MAX_AGE_RUNS = 20
"""A unit not seen in this many runs of every chunk is dropped (a renamed or deleted test file must not linger)."""
KEEP_PINS = 8
"""Buildsets whose pinned durations are kept: chunks of older buildsets still running would be cut afresh."""

_locks = {}
"""One lock per suite key: two chunks ending at once read and write the state one after the other (in this master
process; masters sharing a database can still lose a sample, which costs balance only)."""


def version_at_least(version, wanted):
    """``"1.1"`` >= ``(1, 1)``; a version that does not parse is too old."""
    try:
        return tuple(int(p) for p in str(version).split(".")) >= wanted
    except ValueError:
        return False


def medians(units):
    """{unit: median seconds} of the state's ``units``."""
    return {u: statistics.median(h["samples"]) for u, h in units.items() if h.get("samples")}


def merge(state, measured, total_chunks):
    """The state after one chunk's run measured ``measured`` ({unit: seconds}): samples added, old units dropped."""
    runs = state.get("runs", 0) + 1
    max_age = MAX_AGE_RUNS * max(1, total_chunks)
    units = {u: h for u, h in state.get("units", {}).items() if runs - h.get("last_run", 0) <= max_age}
    for unit, seconds in measured.items():
        h = units.get(unit) or {"samples": [], "last_run": runs}
        h["samples"] = (h["samples"] + [float(seconds)])[-KEEP_SAMPLES:]
        h["last_run"] = runs
        units[unit] = h
    return {"runs": runs, "units": units}


class MasterDurations:
    """The master-kept durations of one suite (``key``), in the master's object state."""

    def __init__(self, master, key):
        self.master = master
        self.key = key
        self._objectid = None
        self._lock = _locks.setdefault(key, defer.DeferredLock())

    @defer.inlineCallbacks
    def _oid(self):
        if self._objectid is None:
            self._objectid = yield self.master.db.state.getObjectId(self.key, STATE_CLASS)
        return self._objectid

    def pinned(self, bsid):
        """The durations every chunk of buildset ``bsid`` is cut from ({unit: seconds}; {} on the first run)."""
        return self._lock.run(self._pinned, bsid)

    @defer.inlineCallbacks
    def _pinned(self, bsid):
        oid = yield self._oid()
        pins = yield self.master.db.state.getState(oid, "pins", [])
        for pin_bsid, durations in pins:
            if pin_bsid == bsid:
                return durations
        state = yield self.master.db.state.getState(oid, "durations", {})
        durations = medians(state.get("units", {}))
        pins = [p for p in pins if p[0] != bsid][-(KEEP_PINS - 1):] + [[bsid, durations]]
        yield self.master.db.state.setState(oid, "pins", pins)
        # masters sharing a database: the pin stored last is the one every chunk goes by from here on
        pins = yield self.master.db.state.getState(oid, "pins", [])
        for pin_bsid, stored in pins:
            if pin_bsid == bsid:
                return stored
        return durations

    def record(self, measured, total_chunks):
        """Adds one chunk's measured unit times ({unit: seconds}) to what the master keeps."""
        return self._lock.run(self._record, measured, total_chunks)

    @defer.inlineCallbacks
    def _record(self, measured, total_chunks):
        if not measured:
            return
        oid = yield self._oid()
        state = yield self.master.db.state.getState(oid, "durations", {})
        yield self.master.db.state.setState(oid, "durations", merge(state, measured, total_chunks))


def chunk_summary(chunk):
    """The ``summary`` log's lines on the chunk: what it ran and what it was cut on."""
    if chunk.get("balanced_on") == "count":
        how = "cut by count (no durations yet)"
    else:
        how = f"balanced on the durations given ({chunk.get('snapshot')})"
    lines = [f"chunk {chunk['this']}/{chunk['total']}: {len(chunk['selected'])} of {chunk['units']} tests, {how}"]
    if chunk.get("expected_s") is not None:
        lines.append(
            f"expected {chunk['expected_s']:.2f} s, mean chunk {chunk['mean_s']:.2f} s, "
            f"{chunk['unknown_units']} without a duration"
        )
    units = chunk.get("unit_durations", {})
    lines.append(
        f"measured {sum(units.values()):.2f} s over {len(units)} tests; "
        f"{chunk.get('unmapped_tests', 0)} results named no test file"
    )
    lines.extend(f"  {u}" for u in chunk["selected"])
    return lines
