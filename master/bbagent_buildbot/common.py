"""What every bbagent step shares: the command check and the structured-result decoding."""

import json

from twisted.internet import defer

from buildbot.process import buildstep
from buildbot.process import results


def json_status(cmd, key):
    """The JSON document a bbagent command sent under status ``key`` (in pieces, in order), or None.

    The agent cuts a long document into several updates of the same key (agent/commands/json-status.ts); the
    master keeps each update of a key it does not know in ``RemoteCommand.updates[key]``, in order.
    """
    pieces = cmd.updates.get(key)
    if not pieces:
        return None
    return json.loads("".join(pieces))


def absolute_workdir(step, workdir):
    """The ``workdir`` argument for a bbagent command: joined onto the builder's directory on the worker.

    Over PB the worker joins a relative workdir onto the builder's directory itself; Buildbot 3.7's msgpack
    protocol does that join on the master, but only for the commands it knows (``shell``, ...), and passes the
    arguments of ours as they are. So the step sends it absolute, joined onto the build's ``builddir`` property
    (the builder's directory on the worker), which both protocols accept.
    """
    builddir = step.getProperty("builddir")
    if builddir and not step.build.path_module.isabs(workdir):
        return step.build.path_module.join(builddir, workdir)
    return workdir


class BbagentStep(buildstep.BuildStep):
    """A step that needs one of bbagent's own remote commands.

    Subclasses set ``bbagent_command`` and call ``yield self.require_bbagent_command()`` (or ``await``) first
    in ``run`` (``@defer.inlineCallbacks``, as Buildbot 3.7's own steps): it returns None when the worker advertises the command, else the FAILURE result after logging
    why (the step's summary says which command is missing).
    """

    bbagent_command = None

    @defer.inlineCallbacks
    def require_bbagent_command(self):
        name = self.bbagent_command
        if self.workerVersion(name) is not None:
            return None
        worker = self.getWorkerName()
        message = (
            f"worker {worker!r} does not advertise the {name!r} command: it is not running bbagent "
            f"(buildbot-worker has no such command), or its bbagent is too old\n"
        )
        log = yield self.addLog("error")
        yield log.addStderr(message)
        yield log.finish()
        self.descriptionDone = [f"{name}: worker has no {name!r} command"]
        return results.FAILURE
