// scripts/bench/run startup: start -> attached on loopback and idle RSS of bbagent (single executable and node bundle)
// against buildbot-worker, in the same run against the same real Buildbot master, over the same protocol
// (--protocol msgpack, the default, or pb). Idle RSS is sampled twice: once attached, and again after one build
// (a shell step printing 5000 lines), when the worker has loaded what running commands needs and V8 has
// optimised the output path.
// Attached = the master's REST API lists the worker as connected (polled every 10 ms, the same for each).
// Targets of issue 5: the binary's start-to-attached <= 0.3x buildbot-worker's, idle RSS <= 1.0x.
//
// --cold drops the page cache before every start (as after a reboot, when a service starts): the executables' and
// libraries' pages are then read from disk, and the file-backed part of RSS is what the run touched, not what a
// previous write or run left cached (see treeRssKiB). It writes /proc/sys/vm/drop_caches when permitted (root
// outside a container); otherwise it evicts the files the candidates read, one by one, with
// posix_fadvise(POSIX_FADV_DONTNEED) (evictFiles): every file each candidate had mapped in a first, warm, run
// (executables, shared libraries), the bundle, and every file under the directories of Python's sys.path (the
// modules buildbot-worker imports). Pages another process has mapped stay cached either way (the master shares
// Python's binary and libraries with buildbot-worker). --cold-evict evicts that way even where drop_caches is
// permitted: it spares the page cache of everything else on the machine.
//
// --bbagent sea|bundle|PATH[,...] picks the bbagent candidates (default sea: the single executable users
// install, dist/bbagent-<os>-<arch>, built first when missing or older than its sources).
//
// The executable runs as installed: copied first, in 64 KiB writes as a download or `install` writes it. Run
// as the build left it (one 100 MB write), its file pages sit in the page cache in large folios and each fault
// maps more of them (+15 MiB of RSS for the same pages touched); --as-built measures that file instead.
//
// Usage: scripts/bench/run startup [--protocol msgpack|pb] [--runs N] [--idle-ms MS] [--cold] [--as-built]
//                                 [--cold-evict] [--bbagent sea|bundle|PATH[,...]]

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { BuildbotMaster } from '../harness/master.js';
import { ManagedProcess, pollUntil, requireExecutable, runCommand } from '../harness/process.js';
import { installCopy, resolveBbagent } from './bbagent-exe.js';

const root = process.cwd();
const PASSWORD = 'bench-pw';
/** How often the master is asked whether the worker is connected. */
const ATTACH_POLL_MS = 10;

interface Candidate {
  label: string;
  worker: string;
  create: () => Promise<void>;
  start: () => Promise<ManagedProcess>;
}

interface Sample {
  attachMs: number;
  rssKiB: number;
  anonKiB: number;
  /** Idle again after one build (a shell step with 5000 lines of output). */
  afterBuildRssKiB: number;
  afterBuildAnonKiB: number;
}

/**
 * VmRSS and RssAnon of a process and all its descendants (from /proc), in KiB. RssAnon is the memory the worker
 * itself owns; the rest of VmRSS is file pages of the executable and libraries, shared with the page cache, and
 * how much of them a mapping shows depends on the kernel's fault-around (the same binary can show +15 MiB when
 * its pages were cached by the write that created it).
 */
function treeRssKiB(pid: number): { rss: number; anon: number } {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone
    }
  }
  const total = { rss: 0, anon: 0 };
  const walk = (p: number): void => {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      total.rss += Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
      total.anon += Number(/^RssAnon:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
    } catch {
      // gone
    }
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return total;
}

/** Writes dirty pages, then drops the clean page cache (what a reboot does to it); false when not permitted. */
function dropPageCache(): boolean {
  execFileSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

// posix_fadvise(DONTNEED) on each file, and on every file under each directory, read from stdin one per line
// (Node has no fadvise). Prints how many files it advised.
const EVICT_PY = `
import os, sys
n = 0
def evict(p):
    global n
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); n += 1
    finally:
        os.close(fd)
for line in sys.stdin.read().split("\\n"):
    if os.path.isdir(line):
        for d, _, fs in os.walk(line):
            for f in fs: evict(os.path.join(d, f))
    elif line:
        evict(line)
print(n)
`;

/** Evicts `paths` (files, and every file under directories) from the page cache; returns how many files. */
function evictFiles(paths: Iterable<string>): number {
  const out = execFileSync('/usr/bin/python3', ['-c', EVICT_PY], { input: [...paths].join('\n'), encoding: 'utf8' });
  return Number(out.trim());
}

/** The files a process has mapped (executable, shared libraries, the SEA's own file), from /proc/<pid>/maps. */
function mappedFiles(pid: number): string[] {
  const files = new Set<string>();
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const file = line.split(/\s+/).slice(5).join(' ');
    if (file.startsWith('/') && !file.endsWith('(deleted)')) files.add(file);
  }
  return [...files];
}

/** The directories of /usr/bin/python3's sys.path: the modules buildbot-worker imports live there. */
function pythonPathDirs(): string[] {
  const out = execFileSync('/usr/bin/python3', ['-c', 'import sys; print("\\n".join(p for p in sys.path if p))'], { encoding: 'utf8' });
  return out.split('\n').filter((d) => d.startsWith('/') && existsSync(d));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      protocol: { type: 'string' },
      runs: { type: 'string' },
      'idle-ms': { type: 'string' },
      cold: { type: 'boolean' },
      'as-built': { type: 'boolean' },
      bbagent: { type: 'string' },
      'cold-evict': { type: 'boolean' },
    },
  });
  // --cold-evict: cold by eviction even where drop_caches is permitted (it spares other programs' page cache)
  const evictOnly = values['cold-evict'] === true;
  const cold = values.cold === true || evictOnly;
  const drop = (): boolean => !evictOnly && dropPageCache();
  const kinds = (values.bbagent ?? 'sea').split(',').filter(Boolean);
  const protocol = values.protocol ?? 'msgpack';
  if (protocol !== 'msgpack' && protocol !== 'pb') throw new Error(`--protocol must be msgpack or pb, not ${protocol}`);
  // evicted before each start when drop_caches is not permitted: filled by the first (warm) run of each candidate
  const evict = new Set<string>();
  let coldHow = '';
  if (cold) {
    if (drop()) coldHow = 'cold: /proc/sys/vm/drop_caches before each start';
    else {
      for (const d of pythonPathDirs()) evict.add(d);
      coldHow = `cold approximated (${evictOnly ? '--cold-evict' : 'drop_caches not permitted'}): posix_fadvise(DONTNEED) before each start on what the candidates mapped in a warm run 0 and every file under Python sys.path`;
    }
    console.log(coldHow);
  }
  const runs = Number(values.runs ?? 5);
  const idleMs = Number(values['idle-ms'] ?? 5000);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-bench-'));
  const bundle = path.join(root, 'build', 'bbagent.cjs');
  const refExe = requireExecutable('buildbot-worker');

  const master = await BuildbotMaster.start({
    dir: path.join(scratch, 'master'),
    protocol,
    workers: [...kinds.map((_, i) => `bb${i}`), 'ref'].map((name) => ({ name, password: PASSWORD })),
    builders: [{ name: 'build', workernames: [...kinds.map((_, i) => `bb${i}`), 'ref'], steps: `[steps.ShellCommand(command=['seq', '1', '5000'])]` }],
  });
  const addr = `127.0.0.1:${master.protocolPort}`;
  const dirOf = (w: string): string => path.join(scratch, w);
  const spawnWorker = (label: string, command: string, args: string[], w: string): Promise<ManagedProcess> =>
    ManagedProcess.spawn({ command, args, cwd: dirOf(w), env: { ...process.env, BBAGENT_CACHE_DIR: path.join(scratch, 'cache') }, label });

  const candidates: Candidate[] = [];
  for (const [i, kind] of kinds.entries()) {
    const run = resolveBbagent(kind, root, bundle, (s) => console.log(s));
    const worker = `bb${i}`;
    let command = process.execPath;
    let pre = [bundle];
    let label = 'bbagent on node (bundle)';
    if (run.executable !== undefined) {
      const asBuilt = values['as-built'] === true || run.kind === 'path';
      command = asBuilt ? run.executable : path.join(scratch, `${worker}-${path.basename(run.executable)}`);
      if (!asBuilt) installCopy(run.executable, command);
      pre = [];
      label = run.kind === 'sea' ? `bbagent single executable${asBuilt ? ', as built' : ''}` : `bbagent ${path.basename(run.executable)}`;
    }
    evict.add(run.executable ?? bundle);
    candidates.push({
      label,
      worker,
      create: () =>
        runCommand(command, [...pre, 'create-worker', '--quiet', '--force', `--protocol=${protocol}`, dirOf(worker), addr, worker, PASSWORD]).then(
          () => undefined,
        ),
      start: () => spawnWorker(label, command, [...pre, 'start', '--nodaemon', dirOf(worker)], worker),
    });
  }
  candidates.push({
    label: 'buildbot-worker 3.7',
    worker: 'ref',
    create: () =>
      runCommand(refExe, [
        'create-worker',
        '--quiet',
        '--force',
        '--relocatable',
        protocol === 'pb' ? '--protocol=pb' : '--protocol=msgpack_experimental_v7',
        dirOf('ref'),
        addr,
        'ref',
        PASSWORD,
      ]).then(() => undefined),
    start: () => spawnWorker('buildbot-worker', refExe, ['start', '--nodaemon', dirOf('ref')], 'ref'),
  });

  const samples = new Map<string, Sample[]>(candidates.map((c) => [c.label, []]));
  try {
    for (const c of candidates) {
      mkdirSync(dirOf(c.worker), { recursive: true });
      await c.create();
    }
    // run 0 (evicting only): warm and not recorded, to learn which files each candidate maps
    const firstRun = cold && coldHow.startsWith('cold approximated') ? 0 : 1;
    for (let run = firstRun; run <= runs; run++) {
      // Interleaved, so drift on the machine (page cache, CPU frequency) hits every candidate alike.
      for (const c of candidates) {
        if (cold && run > 0 && !drop()) evictFiles(evict);
        const t0 = performance.now();
        const proc = await c.start();
        await pollUntil(async () => ((await master.worker(c.worker))?.connected_to.length ? true : undefined), {
          timeoutMs: 30_000,
          intervalMs: ATTACH_POLL_MS,
          what: `${c.label} to attach`,
          failFast: () => (proc.running ? undefined : `${c.label} exited: ${proc.capturedOutput.slice(-2000)}`),
        });
        const attachMs = performance.now() - t0;
        await new Promise((r) => setTimeout(r, idleMs));
        if (run === 0) {
          for (const f of mappedFiles(proc.pid)) evict.add(f);
          console.log(`run 0 ${c.label}: warm, not recorded (its mapped files are evicted before the next starts: ${evictFiles(evict)} files)`);
          await proc.stop(15_000);
          await master.waitForWorker(c.worker, false, 30_000);
          continue;
        }
        const mem = treeRssKiB(proc.pid);
        // then one build, and idle again: what a worker that has run builds holds
        const build = await master.runBuild('build');
        if (build.results !== 0) throw new Error(`${c.label}: the build failed (results ${build.results})`);
        await new Promise((r) => setTimeout(r, idleMs));
        const after = treeRssKiB(proc.pid);
        samples.get(c.label)!.push({ attachMs, rssKiB: mem.rss, anonKiB: mem.anon, afterBuildRssKiB: after.rss, afterBuildAnonKiB: after.anon });
        console.log(
          `run ${run} ${c.label.padEnd(28)} attached in ${attachMs.toFixed(0).padStart(5)} ms, idle RSS ${(mem.rss / 1024).toFixed(1)} MiB (anonymous ${(mem.anon / 1024).toFixed(1)} MiB)` +
            `, after a build ${(after.rss / 1024).toFixed(1)} MiB (anonymous ${(after.anon / 1024).toFixed(1)} MiB)`,
        );
        await proc.stop(15_000);
        await master.waitForWorker(c.worker, false, 30_000);
      }
    }
  } finally {
    await master.stop();
  }

  const ref = samples.get('buildbot-worker 3.7')!;
  const refAttach = median(ref.map((s) => s.attachMs));
  const refRss = median(ref.map((s) => s.rssKiB));
  const refAnon = median(ref.map((s) => s.anonKiB));
  const refAfter = median(ref.map((s) => s.afterBuildRssKiB));
  const summary = candidates.map((c) => {
    const s = samples.get(c.label)!;
    const attach = median(s.map((x) => x.attachMs));
    const rss = median(s.map((x) => x.rssKiB));
    const anon = median(s.map((x) => x.anonKiB));
    const after = median(s.map((x) => x.afterBuildRssKiB));
    const afterAnon = median(s.map((x) => x.afterBuildAnonKiB));
    return {
      label: c.label,
      runs: s.length,
      attachMsMedian: Math.round(attach),
      attachMsMin: Math.round(Math.min(...s.map((x) => x.attachMs))),
      idleRssMiB: +(rss / 1024).toFixed(1),
      idleAnonMiB: +(anon / 1024).toFixed(1),
      attachRatio: +(attach / refAttach).toFixed(2),
      rssRatio: +(rss / refRss).toFixed(2),
      anonRatio: +(anon / refAnon).toFixed(2),
      afterBuildRssMiB: +(after / 1024).toFixed(1),
      afterBuildAnonMiB: +(afterAnon / 1024).toFixed(1),
      afterBuildRssRatio: +(after / refAfter).toFixed(2),
    };
  });
  console.log(
    `\n${protocol}, ${cold ? `${coldHow}, ` : ''}medians over ${runs} runs (idle RSS after ${idleMs} ms attached, then ${idleMs} ms after one build; ratios vs buildbot-worker; targets: time <= 0.3x, RSS <= 1.0x)`,
  );
  console.log('candidate                     start->attached        idle RSS               of which anonymous     after a build');
  for (const r of summary) {
    console.log(
      `${r.label.padEnd(28)} ${String(r.attachMsMedian).padStart(6)} ms (${r.attachRatio.toFixed(2)}x)  ${r.idleRssMiB.toFixed(1).padStart(6)} MiB (${r.rssRatio.toFixed(2)}x)` +
        `  ${r.idleAnonMiB.toFixed(1).padStart(6)} MiB (${r.anonRatio.toFixed(2)}x)  ${r.afterBuildRssMiB.toFixed(1).padStart(6)} MiB (${r.afterBuildRssRatio.toFixed(2)}x)`,
    );
  }
  mkdirSync(path.join(root, 'build'), { recursive: true });
  writeFileSync(
    path.join(root, 'build', `bench-start${protocol === 'pb' ? '-pb' : ''}${cold ? '-cold' : ''}.json`),
    JSON.stringify(
      { protocol, runs, idleMs, cold, coldHow, asBuilt: values['as-built'] === true, host: `${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}`, summary },
      null,
      2,
    ) + '\n',
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
