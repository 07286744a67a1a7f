// Build scenarios (Buildbot steps, as Python) that integration tests run on bbagent and, for the
// differential tests, on buildbot-worker against the same master.

/** Helpers defined in master.cfg before the builders: a step that drives the fs commands directly. */
export const PYTHON_PREAMBLE = String.raw`
from buildbot.process import buildstep
from buildbot.steps.worker import CompositeStepMixin
from twisted.internet import defer

class FsProbe(buildstep.BuildStep, CompositeStepMixin):
    """Runs glob/stat/listdir/rmfile/mkdir remote commands and writes what came back to a 'result' log."""
    def __init__(self, ops, **kw):
        super().__init__(**kw)
        self.ops = ops

    @defer.inlineCallbacks
    def run(self):
        yield self.addLogForRemoteCommands('cmds')
        out = []
        base = self.build.properties.getProperty('builddir')
        for op, arg in self.ops:
            p = base + '/' + arg
            if op == 'glob':
                cmd_ok = yield self.runRemoteCommand('glob', {'path': p, 'logEnviron': False}, abandonOnFailure=False,
                                                     evaluateCommand=lambda c: (c.rc, sorted(c.updates.get('files', [[]])[-1])))
                out.append('glob %s -> %r' % (arg, cmd_ok))
            elif op == 'stat':
                res = yield self.runRemoteCommand('stat', {'file': p, 'logEnviron': False}, abandonOnFailure=False,
                                                  evaluateCommand=lambda c: (c.rc, 'stat' in c.updates and oct(c.updates['stat'][-1][0])))
                out.append('stat %s -> %r' % (arg, res))
            elif op == 'listdir':
                res = yield self.runRemoteCommand('listdir', {'dir': p}, abandonOnFailure=False,
                                                  evaluateCommand=lambda c: (c.rc, sorted(c.updates.get('files', [[]])[-1])))
                out.append('listdir %s -> %r' % (arg, res))
            elif op == 'rmfile':
                res = yield self.runRemoteCommand('rmfile', {'path': p, 'logEnviron': False}, abandonOnFailure=False,
                                                  evaluateCommand=lambda c: c.rc)
                out.append('rmfile %s -> %r' % (arg, res))
            elif op == 'mkdir':
                res = yield self.runRemoteCommand('mkdir', {'dir': p, 'logEnviron': False}, abandonOnFailure=False,
                                                  evaluateCommand=lambda c: c.rc)
                out.append('mkdir %s -> %r' % (arg, res))
        yield self.addCompleteLog('result', '\n'.join(out) + '\n')
        return 0

class WorkerInfoProbe(buildstep.BuildStep):
    """Writes the worker info the master keeps in memory (worker.info) to an 'info' log, as JSON."""
    @defer.inlineCallbacks
    def run(self):
        import json
        info = self.build.workerforbuilder.worker.info
        yield self.addCompleteLog('info', json.dumps({k: info.getProperty(k) for k in info.properties}, sort_keys=True, default=str))
        return 0
`;

export interface Scenario {
  name: string;
  /** Python list expression of steps; `MASTERDIR` is replaced by the master's directory. */
  steps: string;
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'shell',
    steps: String.raw`[
      steps.ShellCommand(name='echo', command='echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; printf "partial line\\na\\nb\\nc\\ndone"', logEnviron=False),
      steps.ShellCommand(name='fail', command='echo failing; exit 3', logEnviron=False),
      steps.ShellCommand(name='argv', command=['printf', '%s|', 'a b', '', "it's"], logEnviron=False),
      steps.ShellCommand(name='missing-program', command=['no-such-program-bb'], logEnviron=False),
      steps.ShellCommand(name='env', command='echo "$A|$B|${'$'}{C-unset}"', env={'A': ['x', 'y'], 'B': '${'$'}{LANG}!', 'C': None}, logEnviron=False),
      steps.ShellCommand(name='stdin', command='cat; echo end', initialStdin='from stdin\n', logEnviron=False),
      steps.ShellCommand(name='stdin-closed', command='cat; echo end', logEnviron=False),
      steps.ShellCommand(name='want-stdout', command='echo out; echo err >&2', want_stdout=False, logEnviron=False),
      steps.ShellCommand(name='unicode', command="printf 'caf\\303\\251 \\342\\234\\223\\n\\377\\376 bad\\nprogress 10%%\\rprogress 50%%\\rprogress 100%%\\n'", logEnviron=False),
      steps.ShellCommand(name='make-file', command='echo x > afile', logEnviron=False),
      steps.ShellCommand(name='timeout', command='echo start; sleep 30', timeout=1, logEnviron=False),
      steps.ShellCommand(name='maxtime', command='echo start; sleep 1; echo more; sleep 30', maxTime=2, logEnviron=False),
      steps.ShellCommand(name='env-log', command='true', env={'BB_TEST_VAR': 'v'}),
      # an EXCEPTION ends the build, so this comes last
      steps.ShellCommand(name='bad-workdir', command='true', workdir='build/afile/sub', logEnviron=False),
    ]`,
  },
  {
    name: 'pty',
    steps: String.raw`[
      steps.ShellCommand(name='pty', command='tty; stty size; echo "TERM=${'$'}{TERM-unset}"; printf "a\\r\\nb\\n"', usePTY=True, logEnviron=False),
    ]`,
  },
  {
    name: 'logfiles',
    steps: String.raw`[
      steps.ShellCommand(name='logfiles', command='echo l1 > my.log; sleep 2.5; echo l2 >> my.log; printf tail >> my.log; echo done',
                         logfiles={'mylog': 'my.log'}, logEnviron=False),
    ]`,
  },
  {
    name: 'fs',
    steps: String.raw`[
      steps.MakeDirectory(dir='build/newdir/sub'),
      steps.FileExists(name='stat-dir', file='build/newdir'),
      steps.ShellCommand(name='tree', command='mkdir -p tree/a/b tree/empty && echo x > tree/a/b/f && echo y > tree/top.txt && touch tree/.hidden tree/e.txt', logEnviron=False),
      steps.CopyDirectory(src='build/tree', dest='build/tree-copy'),
      steps.FileExists(name='stat-copied', file='build/tree-copy/top.txt'),
      steps.RemoveDirectory(dir='build/tree-copy'),
      steps.FileExists(name='stat-removed', file='build/tree-copy/top.txt'),
      FsProbe(name='probe', ops=[('glob', 'build/tree/*.txt'), ('glob', 'build/tree/**'), ('glob', 'build/tree/**/f'), ('glob', 'build/nope/*'),
                                 ('stat', 'build/tree/top.txt'), ('stat', 'build/missing'), ('listdir', 'build/tree'), ('listdir', 'build/missing'),
                                 ('rmfile', 'build/tree/top.txt'), ('rmfile', 'build/tree/top.txt'), ('mkdir', 'build/tree/a/b/f/x')]),
    ]`,
  },
  {
    name: 'transfer',
    steps: String.raw`[
      steps.ShellCommand(name='make-files', command='mkdir -p out/sub/deeper out/emptydir && printf "hello\\n" > out/a.txt && : > out/empty && seq 1 100000 > out/sub/deeper/blob.bin && printf "upload me\\n" > up.txt', logEnviron=False),
      steps.FileUpload(name='upload-file', workersrc='up.txt', masterdest=util.Interpolate('MASTERDIR/uploads/%(prop:buildername)s/up.txt')),
      steps.FileUpload(name='upload-missing', haltOnFailure=False, workersrc='nope.txt', masterdest=util.Interpolate('MASTERDIR/uploads/%(prop:buildername)s/nope.txt')),
      steps.DirectoryUpload(name='upload-dir', workersrc='out', masterdest=util.Interpolate('MASTERDIR/uploads/%(prop:buildername)s/out')),
      steps.DirectoryUpload(name='upload-dir-gz', workersrc='out', masterdest=util.Interpolate('MASTERDIR/uploads/%(prop:buildername)s/out-gz'), compress='gz'),
      steps.StringDownload('downloaded text\n', name='string-download', workerdest='dl.txt', mode=0o640),
      steps.ShellCommand(name='show-download', command='ls -l dl.txt | cut -c1-10; wc -c < dl.txt', logEnviron=False),
      # an EXCEPTION ends the build, so this comes last
      steps.DirectoryUpload(name='upload-dir-missing', workersrc='nodir', masterdest=util.Interpolate('MASTERDIR/uploads/%(prop:buildername)s/nodir')),
    ]`,
  },
  {
    name: 'keepstamp',
    // over msgpack the 3.7 master fails utime (its bug): EXCEPTION on both workers; over PB the stamp is kept
    steps: String.raw`[
      steps.ShellCommand(name='old-file', command='printf stamp > stamped.txt && touch -d "2001-02-03 04:05:06" stamped.txt', logEnviron=False),
      steps.FileUpload(name='upload-keepstamp', workersrc='stamped.txt', keepstamp=True, masterdest=util.Interpolate('MASTERDIR/uploads/%(prop:buildername)s/stamped.txt')),
    ]`,
  },
];
