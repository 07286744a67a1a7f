"""FetchBuild: fetch a build (or its tests) onto a bbagent worker, verified, through the agent's cache.

The step runs bbagent's ``fetch`` remote command (advertised with version 1.0): the worker downloads ``url``,
checks its sha256 or sha512 while it streams, keeps it in its content-addressed cache (a later fetch of the same
file sends no request at all, and concurrent fetches by several builds of one agent make one request), and copies
it to ``dest`` or extracts it (tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip, members escaping the directory
refused) into ``extract``: the agent keeps the extracted tree in its cache too and hands the build a copy, its
own to write into (or, with ``link=True``, a read-only symlink to the cached tree). Paths are relative to the
step's ``workdir`` in the builder directory.

In master.cfg::

    from bbagent_buildbot.fetch import FetchBuild

    f.addStep(FetchBuild(
        url=util.Interpolate("https://builds.example.com/%(prop:revision)s/app.tar.zst"),
        sha256=util.Property("app_sha256"),
        extract="app"))
    f.addStep(steps.ShellCommand(command=["app/bin/run-tests"]))

On success the step sets the properties named by ``path_property`` (the file or directory on the worker) and
``digest_property`` (the verified hex digest), and, when ``result_property`` names one, the command's whole
result ``{path, algorithm, digest, bytes, cached, attempts, seconds}`` (and, with ``extract``, ``tree_cached``:
the agent copied its cached tree instead of extracting; ``linked`` with ``link=True``); its summary says what was
fetched ("fetched 12.3 MiB (cached)"). A failure (404, hash mismatch, unreachable server, disk floor, unsafe archive)
fails the step with the agent's one-line reason in the summary and the log. On a worker that does not advertise
``fetch`` (buildbot-worker, an older bbagent) the step fails at once saying so.
"""

from twisted.internet import defer

from buildbot import config
from buildbot.process import remotecommand
from buildbot.process import results

from bbagent_buildbot.common import BbagentStep
from bbagent_buildbot.common import json_status

#: Status keys of the command's structured result and of its failure (agent/commands/fetch.ts).
FETCH_STATUS_KEY = "fetch"
FETCH_ERROR_STATUS_KEY = "fetch_error"


def human_size(n):
    """1536 -> '1.5 KiB' (as the agent writes sizes)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # not reached


class FetchBuild(BbagentStep):
    """Fetches ``url`` (verified by ``sha256`` or ``sha512``) onto the worker; see the module's documentation.

    :param url: the http(s) URL (renderable).
    :param sha256: the expected sha256, 64 hex digits (renderable); give it or ``sha512``.
    :param sha512: the expected sha512, 128 hex digits (renderable).
    :param dest: the file to create or replace, relative to ``workdir`` (renderable).
    :param extract: the directory to extract the archive into, relative to ``workdir`` (renderable). With
        ``clobber`` (the default) what was there is removed first; else it must not exist, or be empty.
    :param cache: fetch through the agent's cache (default True). Without it ``dest`` or ``extract`` is needed.
        With neither ``dest`` nor ``extract`` the result is the cache's own copy, which must not be changed.
    :param clobber: remove ``extract`` before extracting (default True; a second build in the same
        builder directory would otherwise find it full).
    :param link: with ``extract`` (and the cache): make ``extract`` a symlink to the agent's cached tree instead
        of a copy (default False). Faster for trees of many files, but read-only: a build that writes into it
        makes the agent extract the tree again, under any other build using it at that moment.
    :param path_property: the property set to the resulting path (None: none).
    :param digest_property: the property set to the verified digest (None: none).
    :param result_property: a property set to the whole result (a dict), or None (default).
    """

    name = "fetch"
    description = ["fetching"]
    descriptionDone = ["fetched"]
    bbagent_command = "fetch"
    haltOnFailure = True
    flunkOnFailure = True
    renderables = ["url", "sha256", "sha512", "dest", "extract"]

    def __init__(
        self,
        url,
        sha256=None,
        sha512=None,
        dest=None,
        extract=None,
        cache=True,
        clobber=True,
        link=False,
        path_property="fetch_path",
        digest_property="fetch_digest",
        result_property=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (sha256 is None) == (sha512 is None):
            config.error("FetchBuild: give exactly one of sha256 and sha512")
        if dest is not None and extract is not None:
            config.error("FetchBuild: dest and extract exclude each other")
        if not cache and dest is None and extract is None:
            config.error("FetchBuild: without the cache (cache=False) give dest or extract")
        if link and (extract is None or not cache):
            config.error("FetchBuild: link=True needs extract and the cache (it links to the cached tree)")
        self.url = url
        self.sha256 = sha256
        self.sha512 = sha512
        self.dest = dest
        self.extract = extract
        self.cache = bool(cache)
        self.clobber = bool(clobber)
        self.link = bool(link)
        self.path_property = path_property
        self.digest_property = digest_property
        self.result_property = result_property

    def command_args(self):
        """The ``fetch`` command's arguments (after rendering)."""
        args = {"url": self.url, "workdir": self.workdir, "cache": self.cache}
        if self.sha256 is not None:
            args["sha256"] = self.sha256
        else:
            args["sha512"] = self.sha512
        if self.dest is not None:
            args["dest"] = self.dest
        if self.extract is not None:
            args["extract"] = self.extract
        if self.link:
            args["link"] = True
        # msgpack masters pass a bbagent command's arguments as they are, without the builder: the agent
        # resolves relative paths in this (absolute) builder directory then. PB names the builder itself.
        builddir = self.build.getProperty("builddir")
        if builddir:
            args["builddir"] = builddir
        return args

    @defer.inlineCallbacks
    def run(self):
        missing = yield self.require_bbagent_command()
        if missing is not None:
            return missing
        if self.extract is not None and self.clobber:
            cleared = yield self._remove_extract_dir()
            if cleared is not None:
                return cleared
        cmd = remotecommand.RemoteCommand(self.bbagent_command, self.command_args())
        log = yield self.addLog("stdio")
        cmd.useLog(log, False)
        yield self.runCommand(cmd)

        result = json_status(cmd, FETCH_STATUS_KEY)
        if cmd.didFail() or result is None:
            failure = json_status(cmd, FETCH_ERROR_STATUS_KEY) or {}
            reason = failure.get("message") or f"{self.url}: the fetch command failed (rc {cmd.rc})"
            self.descriptionDone = [f"fetch failed: {reason}"]
            return results.FAILURE
        self._set_properties(result)
        how = "cached" if result.get("cached") else f"{result.get('attempts', 0)} request(s)"
        if result.get("linked"):
            how += ", linked"
        self.descriptionDone = [f"fetched {human_size(int(result.get('bytes', 0)))} ({how})"]
        return results.SUCCESS

    def _set_properties(self, result):
        source = "FetchBuild"
        if self.path_property:
            self.setProperty(self.path_property, result.get("path"), source, runtime=True)
        if self.digest_property:
            self.setProperty(self.digest_property, result.get("digest"), source, runtime=True)
        if self.result_property:
            self.setProperty(self.result_property, result, source, runtime=True)

    @defer.inlineCallbacks
    def _remove_extract_dir(self):
        """Runs the worker's rmdir on the extract directory; None, or FAILURE when it could not be removed."""
        target = self.build.path_module.join(self.workdir, self.extract)
        cmd = remotecommand.RemoteCommand("rmdir", {"dir": target, "logEnviron": False})
        log = yield self.addLog("clobber")
        cmd.useLog(log, False, "stdio")
        yield self.runCommand(cmd)
        if cmd.didFail():
            self.descriptionDone = [f"fetch: cannot remove {target} before extracting"]
            return results.FAILURE
        return None
