"""Buildbot master steps for workers running bbagent.

Each step drives one of bbagent's own remote commands (``fetch``, ``suite``, ``perf``) and reads its structured
result from the command's status updates (see ``common.json_status``). On a worker that does not advertise the
command (buildbot-worker, or an older bbagent) the step fails with a message naming the command and the worker.
"""

__version__ = "0.1.0"
