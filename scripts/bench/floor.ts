// scripts/bench/run floor: what of the single executable's memory and start-up is Node's and what is bbagent's.
// Builds two single executables the way scripts/release/build-binaries builds bbagent (the pinned linux-x64 Node,
// stripped, the same V8 flags, a code cache): "empty" (a script that only opens a TCP connection) and
// "builtins" (the same after loading the Node modules `bbagent start` loads over PB before its first packet),
// and runs them beside bbagent itself (`start --nodaemon` against a local TCP listener, no master). For each:
// spawn -> first TCP connection, warm and cold (the executable's pages evicted with posix_fadvise(DONTNEED)),
// and after --idle-ms VmHWM, RssFile, RssAnon and RSS by mapping (smaps.ts). Medians of --runs.
//
// Usage: scripts/bench/run floor [--runs N] [--idle-ms MS] [--bbagent sea|PATH]

import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { SEA_EXEC_ARGV, SEA_FUSE, SEA_RESOURCE, findTarget } from '../release/targets.js';
import { NODE_VERSION } from '../release/targets.js';
import { nodePackageDir, run } from '../release/tools.js';
import { ensureSingleExecutable, hostTarget, installCopy } from './bbagent-exe.js';
import { smapsBreakdown, smapsOf } from './smaps.js';

const root = process.cwd();
const work = path.join(root, 'build', 'cache', 'floor');

/** The Node modules `bbagent start` loads over PB before attaching (node:http and node:zlib only for msgpack). */
const START_BUILTINS = [
  'v8',
  'module',
  'os',
  'path',
  'crypto',
  'fs',
  'util',
  'child_process',
  'fs/promises',
  'buffer',
  'timers/promises',
  'stream',
  'net',
  'vm',
];

const EVICT_PY = `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)`;

/** A single executable whose main loads `builtins`, connects to 127.0.0.1:$FLOOR_PORT and idles. */
function buildSea(name: string, builtins: string[], node: string): string {
  const dir = path.join(work, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const main = path.join(dir, 'main.js');
  writeFileSync(
    main,
    `for (const m of ${JSON.stringify(builtins)}) require(m);\n` +
      `require('net').connect(Number(process.env.FLOOR_PORT), '127.0.0.1').on('error', () => {});\nsetInterval(() => {}, 1000);\n`,
  );
  const blob = path.join(dir, 'sea.blob');
  const config = { main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, useSnapshot: false, execArgv: SEA_EXEC_ARGV };
  writeFileSync(path.join(dir, 'sea-config.json'), JSON.stringify(config));
  run(node, [...SEA_EXEC_ARGV, '--experimental-sea-config', path.join(dir, 'sea-config.json')], { cwd: dir });
  const exe = path.join(dir, `floor-${name}`);
  copyFileSync(node, exe);
  run('strip', [exe]);
  const postject = createRequire(path.join(root, 'package.json')).resolve('postject/dist/cli.js');
  run(process.execPath, [postject, exe, SEA_RESOURCE, blob, '--sentinel-fuse', SEA_FUSE]);
  const installed = `${exe}-installed`;
  installCopy(exe, installed);
  return installed;
}

interface Candidate {
  label: string;
  exe: string;
  args: string[];
}

interface Sample {
  connectMs: number;
  hwm: number;
  file: number;
  anon: number;
  by: Record<string, number>;
}

const status = (pid: number, key: string): number =>
  Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

async function once(c: Candidate, server: net.Server, port: number, cold: boolean, idleMs: number): Promise<Sample> {
  if (cold) execFileSync('/usr/bin/python3', ['-c', EVICT_PY, c.exe]);
  const connected = new Promise<void>((resolve) => server.once('connection', (s: net.Socket) => (s.destroy(), resolve())));
  const t0 = performance.now();
  const child = spawn(c.exe, c.args, { stdio: 'ignore', env: { ...process.env, FLOOR_PORT: String(port) } });
  await connected;
  const connectMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, idleMs));
  const pid = child.pid!;
  const sample = {
    connectMs,
    hwm: status(pid, 'VmHWM'),
    file: status(pid, 'RssFile'),
    anon: status(pid, 'RssAnon'),
    by: smapsBreakdown(smapsOf(pid), readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]!),
  };
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return sample;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (kib: number): string => (kib / 1024).toFixed(1);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, 'idle-ms': { type: 'string' }, bbagent: { type: 'string' } } });
  const runs = Number(values.runs ?? 7);
  const idleMs = Number(values['idle-ms'] ?? 1500);
  const t = findTarget('linux-x64')!;
  const node = path.join(nodePackageDir(path.join(root, 'build', 'cache'), t, NODE_VERSION, console.log), t.nodeBinary);
  const bbagentFile = !values.bbagent || values.bbagent === 'sea' ? ensureSingleExecutable(root, hostTarget(), console.log) : path.resolve(values.bbagent);
  mkdirSync(work, { recursive: true });
  const bbagent = path.join(work, 'bbagent-installed');
  installCopy(bbagentFile, bbagent);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const basedir = path.join(work, 'worker');
  rmSync(basedir, { recursive: true, force: true });
  execFileSync(bbagent, ['create-worker', basedir, `127.0.0.1:${port}`, 'floor', 'pw'], { stdio: 'ignore' });
  const candidates: Candidate[] = [
    { label: 'empty single executable', exe: buildSea('empty', [], node), args: [] },
    { label: `+ the ${START_BUILTINS.length} Node modules start loads`, exe: buildSea('builtins', START_BUILTINS, node), args: [] },
    { label: 'bbagent start --nodaemon', exe: bbagent, args: ['start', '--nodaemon', basedir] },
  ];
  const samples = new Map<string, { warm: Sample[]; cold: Sample[] }>(candidates.map((c) => [c.label, { warm: [], cold: [] }]));
  for (let i = 0; i < runs; i++) {
    for (const cold of [false, true]) for (const c of candidates) samples.get(c.label)![cold ? 'cold' : 'warm'].push(await once(c, server, port, cold, idleMs));
  }
  server.close();
  console.log(`\n${runs} runs each, idle ${idleMs} ms, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log(`| | spawn -> connection warm | cold | VmHWM | RssFile | RssAnon | .text | .rodata | V8 heap etc. (anon mmap) | malloc | SEA blob |`);
  console.log(`|---|---|---|---|---|---|---|---|---|---|---|`);
  for (const c of candidates) {
    const s = samples.get(c.label)!;
    const m = (f: (x: Sample) => number): number => median(s.warm.map(f));
    const by = (k: string): string => mib(m((x) => Object.entries(x.by).find(([n]) => n.startsWith(k))?.[1] ?? 0));
    console.log(
      `| ${c.label} | ${median(s.warm.map((x) => x.connectMs)).toFixed(0)} ms | ${median(s.cold.map((x) => x.connectMs)).toFixed(0)} ms | ` +
        `${mib(m((x) => x.hwm))} | ${mib(m((x) => x.file))} | ${mib(m((x) => x.anon))} | ${by('exe: code')} | ${by('exe: read-only')} | ` +
        `${by('anon: mmap')} | ${by('malloc')} | ${by('exe: SEA blob')} |`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
