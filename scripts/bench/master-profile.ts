// --master-profile DIR: where the master's CPU goes, per thread and per Python function, in each measured
// window. A master.cfg snippet runs cProfile in every thread of the master (its reactor thread and the
// database threads started after the config is loaded), timed by each thread's CPU clock; SIGUSR2 toggles: the first marks the start of a
// window, the second writes what each thread spent since the mark to DIR/<label>.txt, the label read from
// DIR/label. cProfile slows Python code down (about 1.5-2× here), so CPU figures of such a run are not
// comparable with a plain run; the shares are what it is for.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Python for master.cfg: the profiler, writing into `dir`. */
export function masterProfileConfig(dir: string): string {
  return `
import cProfile as _bp_cprofile, threading as _bp_threading, signal as _bp_signal, os as _bp_os, time as _bp_time
from twisted.internet import reactor as _bp_reactor
_BP_DIR = ${JSON.stringify(dir)}
_bp_profiles = {}
_bp_marks = {}
_bp_state = {'marked': False, 'cpu': None}

def _bp_thread_start(frame, event, arg):
    p = _bp_cprofile.Profile(_bp_time.thread_time_ns, 1e-9)
    _bp_profiles['%s:%d' % (_bp_threading.current_thread().name, _bp_threading.get_ident())] = p
    p.enable()

_bp_threading.setprofile(_bp_thread_start)

def _bp_key(code):
    if isinstance(code, str):
        return code
    return '%s:%d(%s)' % (code.co_filename.replace('/usr/lib/python3/dist-packages/', ''), code.co_firstlineno, code.co_name)

def _bp_snapshot():
    out = {}
    for name, p in list(_bp_profiles.items()):
        table = {}
        for e in p.getstats():
            k = _bp_key(e.code)
            c, i, t = table.get(k, (0, 0.0, 0.0))
            table[k] = (c + e.callcount, i + e.inlinetime, t + e.totaltime)
        out[name] = table
    return out

def _bp_diff(now, then):
    out = {}
    for k, (c, i, t) in now.items():
        c0, i0, t0 = then.get(k, (0, 0.0, 0.0))
        if c - c0 or i - i0 > 1e-6:
            out[k] = (c - c0, i - i0, t - t0)
    return out

def _bp_dump():
    now = _bp_snapshot()
    try:
        label = open(_bp_os.path.join(_BP_DIR, 'label')).read().strip() or 'window'
    except OSError:
        label = 'window'
    lines = []
    groups = {'reactor': {}, 'other threads': {}}
    for name, table in now.items():
        d = _bp_diff(table, _bp_marks.get(name, {}))
        g = groups['reactor' if name.startswith('MainThread') else 'other threads']
        for k, (c, i, t) in d.items():
            c0, i0, t0 = g.get(k, (0, 0.0, 0.0))
            g[k] = (c0 + c, i0 + i, t0 + t)
        lines.append('thread %s: %.3f s in %d calls' % (name, sum(v[1] for v in d.values()), sum(v[0] for v in d.values())))
    for gname, g in groups.items():
        total = sum(v[1] for v in g.values())
        lines.append('')
        lines.append('== %s: %.3f s (profiled time)' % (gname, total))
        lines.append('-- by own time: own s, cumulative s, calls, function')
        for k, (c, i, t) in sorted(g.items(), key=lambda kv: -kv[1][1])[:45]:
            lines.append('%8.4f %8.4f %8d  %s' % (i, t, c, k))
        lines.append('-- by cumulative time')
        for k, (c, i, t) in sorted(g.items(), key=lambda kv: -kv[1][2])[:45]:
            lines.append('%8.4f %8.4f %8d  %s' % (i, t, c, k))
    with open(_bp_os.path.join(_BP_DIR, label + '.txt'), 'w') as f:
        f.write('\\n'.join(lines) + '\\n')

def _bp_toggle(signum, frame):
    if not _bp_state['marked']:
        _bp_marks.clear()
        _bp_marks.update(_bp_snapshot())
        _bp_state['marked'] = True
    else:
        _bp_state['marked'] = False
        _bp_dump()

def _bp_main():
    p = _bp_cprofile.Profile(_bp_time.thread_time_ns, 1e-9)
    _bp_profiles['MainThread:%d' % _bp_threading.get_ident()] = p
    p.enable()
    _bp_signal.signal(_bp_signal.SIGUSR2, _bp_toggle)

_bp_reactor.callFromThread(_bp_main)
`;
}

/** Starts (first call) or ends and writes (second call) a profiled window of the master. */
export function toggleMasterProfile(dir: string, masterPid: number, label: string): void {
  writeFileSync(path.join(dir, 'label'), label);
  process.kill(masterPid, 'SIGUSR2');
}

/** Reads a window's profile once the master wrote it (it does so on the signal, between two events). */
export async function readMasterProfile(dir: string, label: string, timeoutMs = 10_000): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      return readFileSync(path.join(dir, `${label}.txt`), 'utf8');
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return undefined;
}
