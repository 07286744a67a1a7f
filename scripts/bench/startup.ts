// scripts/bench/run startup: start -> attached on loopback and idle RSS of bbagent (single executable and node bundle)
// against buildbot-worker, in the same run against the same real Buildbot master, over the same protocol
// (--protocol msgpack, the default, or pb). Idle RSS is sampled twice: once attached, and again after one build
// (a shell step printing 5000 lines), when the worker has loaded what running commands needs and V8 has
// optimised the output path.
// Attached = the master's REST API lists the worker as connected (polled every 10 ms, the same for each).
// Targets of issue 5: the binary's start-to-attached <= 0.3x buildbot-worker's, idle RSS <= 1.0x.
//
// --cold drops the page cache before every start (as after a reboot, when a service starts; needs root): the
// executables' and libraries' pages are then read from disk, and the file-backed part of RSS is what the run
// touched, not what a previous write or run left cached (see treeRssKiB).
//
// The executable runs as installed: copied first, in 64 KiB writes as a download or `install` writes it. Run
// as the build left it (one 100 MB write), its file pages sit in the page cache in large folios and each fault
// maps more of them (+15 MiB of RSS for the same pages touched); --as-built measures that file instead.
//
// Usage: scripts/bench/run startup [--protocol msgpack|pb] [--runs N] [--idle-ms MS] [--cold] [--as-built]

import { execFileSync } from 'node:child_process';
import { chmodSync, createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { BuildbotMaster } from '../harness/master.js';
import { ManagedProcess, pollUntil, requireExecutable, runCommand } from '../harness/process.js';

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

/** Copies the executable as a download would write it: 64 KiB at a time, then mode 755. */
async function installCopy(from: string, to: string): Promise<void> {
  await pipeline(createReadStream(from, { highWaterMark: 64 * 1024 }), createWriteStream(to, { mode: 0o755 }));
  chmodSync(to, 0o755);
}

/** Writes dirty pages, then drops the clean page cache (what a reboot does to it). Root only. */
function dropPageCache(): void {
  execFileSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
  } catch (err) {
    throw new Error(`--cold needs to write /proc/sys/vm/drop_caches (run as root): ${(err as Error).message}`);
  }
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
    },
  });
  const cold = values.cold === true;
  const protocol = values.protocol ?? 'msgpack';
  if (protocol !== 'msgpack' && protocol !== 'pb') throw new Error(`--protocol must be msgpack or pb, not ${protocol}`);
  if (cold) dropPageCache(); // fails early, with the reason, when not permitted
  const runs = Number(values.runs ?? 5);
  const idleMs = Number(values['idle-ms'] ?? 5000);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-bench-'));
  const built = path.join(root, 'dist', 'bbagent-linux-x64');
  const binary = values['as-built'] === true ? built : path.join(scratch, 'bbagent');
  if (binary !== built && existsSync(built)) await installCopy(built, binary);
  const bundle = path.join(root, 'build', 'bbagent.cjs');
  const refExe = requireExecutable('buildbot-worker');

  const names = ['bin', 'bundle', 'ref'];
  const master = await BuildbotMaster.start({
    dir: path.join(scratch, 'master'),
    protocol,
    workers: names.map((name) => ({ name, password: PASSWORD })),
    builders: [{ name: 'build', workernames: names, steps: `[steps.ShellCommand(command=['seq', '1', '5000'])]` }],
  });
  const addr = `127.0.0.1:${master.protocolPort}`;
  const dirOf = (w: string): string => path.join(scratch, w);
  const spawnWorker = (label: string, command: string, args: string[], w: string): Promise<ManagedProcess> =>
    ManagedProcess.spawn({ command, args, cwd: dirOf(w), env: { ...process.env, BBAGENT_CACHE_DIR: path.join(scratch, 'cache') }, label });

  const candidates: Candidate[] = [];
  if (existsSync(binary)) {
    candidates.push({
      label: binary === built ? 'bbagent executable, as built' : 'bbagent single executable',
      worker: 'bin',
      create: () =>
        runCommand(binary, ['create-worker', '--quiet', '--force', `--protocol=${protocol}`, dirOf('bin'), addr, 'bin', PASSWORD]).then(() => undefined),
      start: () => spawnWorker('bbagent binary', binary, ['start', '--nodaemon', dirOf('bin')], 'bin'),
    });
  } else {
    console.log(`(${built} is absent: run scripts/release/build-binaries --target linux-x64 to include it)`);
  }
  candidates.push(
    {
      label: 'bbagent on node (bundle)',
      worker: 'bundle',
      create: () =>
        runCommand(process.execPath, [bundle, 'create-worker', '--quiet', '--force', `--protocol=${protocol}`, dirOf('bundle'), addr, 'bundle', PASSWORD]).then(
          () => undefined,
        ),
      start: () => spawnWorker('bbagent bundle', process.execPath, [bundle, 'start', '--nodaemon', dirOf('bundle')], 'bundle'),
    },
    {
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
    },
  );

  const samples = new Map<string, Sample[]>(candidates.map((c) => [c.label, []]));
  try {
    for (const c of candidates) {
      mkdirSync(dirOf(c.worker), { recursive: true });
      await c.create();
    }
    for (let run = 1; run <= runs; run++) {
      // Interleaved, so drift on the machine (page cache, CPU frequency) hits every candidate alike.
      for (const c of candidates) {
        if (cold) dropPageCache();
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
    `\n${protocol}, ${cold ? 'cold page cache, ' : ''}medians over ${runs} runs (idle RSS after ${idleMs} ms attached, then ${idleMs} ms after one build; ratios vs buildbot-worker; targets: time <= 0.3x, RSS <= 1.0x)`,
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
    JSON.stringify({ protocol, runs, idleMs, cold, asBuilt: binary === built, host: `${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}`, summary }, null, 2) +
      '\n',
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
