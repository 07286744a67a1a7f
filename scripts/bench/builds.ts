// The benchmark's builds: what each one runs on the worker (Python step source for master.cfg), what it
// prepares outside the measured window, and how it checks that the data really arrived at the master (or
// the worker): a build whose data did not arrive is a failure, never a fast result.
import { createHash, randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { cpSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BuildbotMaster, Protocol, RestLog, RestStep } from '../harness/master.js';

export type WorkerKind = 'ref' | 'bb';
export type Family = 'stdout' | 'trickle' | 'budget' | 'steps' | 'upload' | 'download' | 'dirupload' | 'first-output' | 'quiet';

export const MiB = 1024 * 1024;

/** Everything a build needs to know about the run it is part of. */
export interface BuildContext {
  master: BuildbotMaster;
  masterDir: string;
  /** Scratch space shared by all runs (source files made once). */
  scratch: string;
  worker: WorkerKind;
  /** The worker's base directory. */
  workerDir: string;
  /** The builder this run forces; its workdir on the worker is `<workerDir>/<builder>/build`. */
  builder: string;
  protocol: Protocol;
}

export interface Verdict {
  /** false: the data did not arrive (a FAILURE row). */
  ok: boolean;
  detail: string;
  /** Bytes of payload the master stored (log builds). */
  deliveredBytes?: number;
  /** budget build: whether the live log stayed within the budget. */
  limited?: boolean;
  /** budget build: what the budget allowed to go live (burst + rate x step duration + one batch). */
  allowanceBytes?: number;
}

/** What the runner measured about the build, for checks that depend on time. */
export interface RunInfo {
  /** Duration of step 1 (from the master's step events). */
  stepS: number | undefined;
}

export interface BenchBuild {
  name: string;
  family: Family;
  /** Bytes the step produces or transfers ("per MiB" metrics divide by this). */
  payloadBytes: number;
  /** Python source of the list of steps (see BuilderSpec.steps). */
  steps(masterDir: string, builder: string): string;
  /** Runs before the measured window (source files, clearing destinations). */
  prepare?(ctx: BuildContext): void;
  verify(ctx: BuildContext, buildid: number, run: RunInfo): Promise<Verdict>;
  timeoutMs: number;
  /** At most this many buildbot-worker runs, whatever --repeat says (a 500 MiB run takes minutes). */
  maxRefRuns?: number;
  /** Why the build cannot run over `protocol`, if it cannot. */
  unsupported?(protocol: Protocol): string | undefined;
}

export function builderDir(ctx: BuildContext): string {
  return path.join(ctx.workerDir, ctx.builder, 'build');
}

// ---------------------------------------------------------------------------------------------------------
// Deterministic output that compresses like a real build log, generated identically by awk or python on the
// worker and here: 256 "message bodies" of build-log words and small numbers (a minimal-standard LCG, exact
// in doubles, so mawk, gawk, python and JS agree), then one line per index with a body picked by the LCG.
// zlib level 1 shrinks it to ~0.18x, gzip -6 to ~0.13x (apt's term.log here: 0.16x, 0.13x).

/** Every generated line is LINE_BYTES long (newline included), so sizes are exact multiples. */
export const LINE_BYTES = 128;
/**
 * Line lengths the stdout build also runs with: which stored chunks the master merges at a log's end depends
 * on lines per chunk (it cuts at 64 KiB or at 1,000 lines, so 40-byte lines hit the line limit and 80-byte and
 * 128-byte lines the size limit at different line counts).
 */
export const STDOUT_LINE_LENGTHS = [LINE_BYTES, 80, 40] as const;
/** The generated body of a line of `lineBytes` (after "line NNNNNNNN ", before the newline). */
const bodyChars = (lineBytes: number): number => lineBytes - 'line 00000000 '.length - 1;
const BODY_CHARS = bodyChars(LINE_BYTES);
const BODIES = 256;
const LCG_A = 48271;
const LCG_M = 2147483647;
const LCG_SEED = 12345;
/** 64 words: the LCG picks one with x % 64; every tenth token is a number x % 1000 instead. */
const VOCAB =
  'gcc -c -O2 -Wall -fPIC -g -I include/ src/ build/ obj/ lib/ test/ core net util io main parser lexer codec ' +
  'buffer stream worker master config.h types.h .c .o .so .a CC LD AR make[1]: make[2]: Entering Leaving ' +
  'directory warning: note: error: unused variable function declared implicitly [-Wunused] ok PASS FAIL SKIP ' +
  'test_ case_ ... done in ms s => -> :: linking compiling';
const LINE_RE = new RegExp(`^line \\d{8} .{${BODY_CHARS}}$`);

/** The generator in TypeScript: line i of the output, in order. */
export class LogLines {
  private x = LCG_SEED;
  private readonly bodies: string[] = [];
  private i = 0;

  constructor(lineBytes = LINE_BYTES) {
    const BODY_CHARS = bodyChars(lineBytes);
    if (BODY_CHARS < 8) throw new Error(`generated lines of ${lineBytes} bytes are too short`);
    const words = VOCAB.split(' ');
    for (let b = 0; b < BODIES; b++) {
      let s = '';
      while (s.length < BODY_CHARS) {
        const x = this.step();
        const token = x % 10 === 0 ? String(x % 1000) : words[x % 64]!;
        s = s === '' ? token : `${s} ${token}`;
      }
      this.bodies.push(s.slice(0, BODY_CHARS));
    }
  }

  private step(): number {
    this.x = (this.x * LCG_A) % LCG_M;
    return this.x;
  }

  next(): string {
    const body = this.bodies[this.step() % BODIES]!;
    return `line ${String(this.i++).padStart(8, '0')} ${body}\n`;
  }
}

/** The same generator in awk (one program, `count` lines of `lineBytes`). */
export function awkLines(count: number, lineBytes = LINE_BYTES): string {
  const BODY_CHARS = bodyChars(lineBytes);
  return (
    `BEGIN{split("${VOCAB}", w, " "); x = ${LCG_SEED};` +
    ` for (b = 0; b < ${BODIES}; b++) { s = "";` +
    ` while (length(s) < ${BODY_CHARS}) { x = (x * ${LCG_A}) % ${LCG_M}; t = (x % 10 == 0) ? (x % 1000) "" : w[1 + x % 64]; s = (s == "") ? t : s " " t }` +
    ` body[b] = substr(s, 1, ${BODY_CHARS}) }` +
    ` for (i = 0; i < ${count}; i++) { x = (x * ${LCG_A}) % ${LCG_M}; printf "line %08d %s\\n", i, body[x % ${BODIES}] } }`
  );
}

/** The same generator in Python, writing `count` lines in pieces of `per` lines every 100 ms. */
export function pythonTrickle(count: number, per: number): string {
  return [
    'import sys, time',
    `w = ${JSON.stringify(VOCAB)}.split(' ')`,
    `x = ${LCG_SEED}`,
    'body = []',
    `for b in range(${BODIES}):`,
    "    s = ''",
    `    while len(s) < ${BODY_CHARS}:`,
    `        x = (x * ${LCG_A}) % ${LCG_M}`,
    '        t = str(x % 1000) if x % 10 == 0 else w[x % 64]',
    "        s = t if s == '' else s + ' ' + t",
    `    body.append(s[:${BODY_CHARS}])`,
    'i = 0',
    `while i < ${count}:`,
    `    n = min(${per}, ${count} - i)`,
    '    out = []',
    '    for j in range(i, i + n):',
    `        x = (x * ${LCG_A}) % ${LCG_M}`,
    `        out.append('line %08d %s\\n' % (j, body[x % ${BODIES}]))`,
    "    sys.stdout.write(''.join(out))",
    '    sys.stdout.flush()',
    '    i += n',
    '    time.sleep(0.1)',
  ].join('\n');
}

const expectedCache = new Map<string, string>();

/** sha256 of the first `count` generated lines, hashed in 1 MiB pieces (cached: 500 MiB takes seconds). */
export function expectedSha(count: number, lineBytes = LINE_BYTES): string {
  const key = `${count}/${lineBytes}`;
  const cached = expectedCache.get(key);
  if (cached) return cached;
  const gen = new LogLines(lineBytes);
  const hash = createHash('sha256');
  let piece = '';
  for (let i = 0; i < count; i++) {
    piece += gen.next();
    if (piece.length >= MiB) {
      hash.update(piece);
      piece = '';
    }
  }
  hash.update(piece);
  const digest = hash.digest('hex');
  expectedCache.set(key, digest);
  return digest;
}

/** What zlib level 1 (permessage-deflate's usual level) makes of `bytes` of generated output, as a ratio. */
export function payloadDeflateRatio(bytes = 8 * MiB): number {
  const gen = new LogLines();
  const lines: string[] = [];
  for (let n = 0; n < bytes; n += LINE_BYTES) lines.push(gen.next());
  const raw = Buffer.from(lines.join(''));
  return deflateRawSync(raw, { level: 1 }).length / raw.length;
}

/** Python string literal (JSON string syntax is a subset of Python's). */
const py = (s: string): string => JSON.stringify(s);

// ---------------------------------------------------------------------------------------------------------
// Reading what the master stored

/** Lines per REST request when paging through a log (~12 MiB of JSON at 128-byte lines). */
const LOG_PAGE_LINES = 100_000;

async function stepLog(master: BuildbotMaster, buildid: number, stepNumber: number, logName = 'stdio'): Promise<RestLog> {
  const { steps } = await master.get<{ steps: RestStep[] }>(`/builds/${buildid}/steps`);
  const step = steps.find((s) => s.number === stepNumber);
  if (!step) throw new Error(`build ${buildid} has no step ${stepNumber} (steps: ${steps.map((s) => s.name).join(', ')})`);
  const { logs } = await master.get<{ logs: RestLog[] }>(`/steps/${step.stepid}/logs`);
  const log = logs.find((l) => l.name === logName);
  if (!log) throw new Error(`step ${step.name} of build ${buildid} has no log ${logName}`);
  return log;
}

/** Calls `onLine(channel, text)` for every stored line of a stdio log, paging through /contents. */
async function scanLog(master: BuildbotMaster, log: RestLog, onLine: (channel: string, text: string) => void): Promise<void> {
  for (let offset = 0; offset < log.num_lines; offset += LOG_PAGE_LINES) {
    const { logchunks } = await master.get<{ logchunks: { content: string }[] }>(`/logs/${log.logid}/contents?offset=${offset}&limit=${LOG_PAGE_LINES}`);
    for (const chunk of logchunks) {
      const lines = chunk.content.split('\n');
      if (lines.at(-1) === '') lines.pop();
      for (const line of lines) onLine(line.charAt(0), line.slice(1));
    }
  }
}

interface StdoutStats {
  lines: number;
  bytes: number;
  sha256: string;
  /** stdout lines that `isPayload` rejected (e.g. budget markers), with the first few kept. */
  foreign: number;
  foreignSample: string[];
  /** header lines the worker added that start with "[bbagent]" (budget markers). */
  markers: number;
  /** stdout lines re-sent as the tail after a "[bbagent] latest N lines:" marker (not counted in lines/bytes). */
  tailLines: number;
  tailBytes: number;
}

async function stdoutStats(master: BuildbotMaster, buildid: number, stepNumber: number, isPayload?: (line: string) => boolean): Promise<StdoutStats> {
  const log = await stepLog(master, buildid, stepNumber);
  const hash = createHash('sha256');
  const stats: StdoutStats = { lines: 0, bytes: 0, sha256: '', foreign: 0, foreignSample: [], markers: 0, tailLines: 0, tailBytes: 0 };
  let piece = '';
  let tailLeft = 0;
  await scanLog(master, log, (channel, text) => {
    if (channel === 'h' && text.startsWith('[bbagent]')) {
      stats.markers++;
      tailLeft = Number(/^\[bbagent\] latest (\d+) lines:/.exec(text)?.[1] ?? 0);
    }
    if (channel !== 'o') return;
    if (tailLeft > 0) {
      tailLeft--;
      stats.tailLines++;
      stats.tailBytes += text.length + 1;
      return;
    }
    if (isPayload && !isPayload(text)) {
      stats.foreign++;
      if (stats.foreignSample.length < 3) stats.foreignSample.push(text.slice(0, 120));
      return;
    }
    stats.lines++;
    stats.bytes += text.length + 1;
    piece += `${text}\n`;
    if (piece.length >= MiB) {
      hash.update(piece);
      piece = '';
    }
  });
  hash.update(piece);
  stats.sha256 = hash.digest('hex');
  return stats;
}

/** A log build's verdict: step 1's stdout is exactly the first `lines` generated lines (of `lineBytes`). */
async function verifyAllLines(ctx: BuildContext, buildid: number, lines: number, lineBytes = LINE_BYTES): Promise<Verdict> {
  const s = await stdoutStats(ctx.master, buildid, 1);
  const want = expectedSha(lines, lineBytes);
  const ok = s.lines === lines && s.sha256 === want;
  return {
    ok,
    deliveredBytes: s.bytes,
    detail: ok ? `${s.lines} lines, sha256 ok` : `got ${s.lines}/${lines} lines, sha256 ${s.sha256 === want ? 'ok' : 'differs'}`,
  };
}

function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** relative path -> sha256 of every file under `root`. */
function treeDigests(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(p).isDirectory()) walk(p, r);
      else out.set(r, sha256File(p));
    }
  };
  walk(root, '');
  return out;
}

function fmtMiB(bytes: number): string {
  return `${(bytes / MiB).toFixed(2)} MiB`;
}

// ---------------------------------------------------------------------------------------------------------
// The builds

export interface Sizes {
  stdoutBytes: number;
  trickleBytes: number;
  /** Seconds the trickle is spread over. */
  trickleSeconds: number;
  budgetBytes: number;
  steps: number;
  transferBytes: number;
  dirFiles: number;
  /** How long the first-output step sleeps after printing (longer than buildbot-worker's 5 s buffer). */
  firstOutputSleep: number;
}

export const FULL_SIZES: Sizes = {
  stdoutBytes: 50 * MiB,
  trickleBytes: 2 * MiB,
  trickleSeconds: 10,
  budgetBytes: 500 * MiB,
  steps: 50,
  transferBytes: 50 * MiB,
  dirFiles: 2000,
  firstOutputSleep: 10,
};

export const QUICK_SIZES: Sizes = {
  stdoutBytes: 10 * MiB,
  trickleBytes: MiB / 2,
  trickleSeconds: 3,
  budgetBytes: 50 * MiB,
  steps: 10,
  transferBytes: 10 * MiB,
  dirFiles: 300,
  firstOutputSleep: 7,
};

/** The live-output budget bbagent is asked for in the budget build (issue 4): 64 KiB/s, 10 MiB burst, spool. */
export const BUDGET_ENV = { BBAGENT_OUTPUT_RATE: '65536', BBAGENT_OUTPUT_BURST: String(10 * MiB), BBAGENT_OUTPUT_POLICY: 'spool' };
const BUDGET_RATE = Number(BUDGET_ENV.BBAGENT_OUTPUT_RATE);
const BUDGET_BURST = Number(BUDGET_ENV.BBAGENT_OUTPUT_BURST);
/** One update batch (the master's buffer_size) may straddle the moment the bucket ran dry. */
const BUDGET_SLACK = 64 * 1024;

const sizeName = (bytes: number): string => (bytes >= MiB ? `${+(bytes / MiB).toFixed(2)}MiB` : `${Math.round(bytes / 1024)}KiB`);

export function benchBuilds(sizes: Sizes): BenchBuild[] {
  const budgetLines = sizes.budgetBytes / LINE_BYTES;
  const trickleLines = sizes.trickleBytes / LINE_BYTES;
  // ~20 KiB every 100 ms at 2 MiB / 10 s
  const trickleChunks = Math.round(sizes.trickleSeconds * 10);
  const trickleChunkLines = Math.ceil(trickleLines / trickleChunks);

  // stdout-50MiB (128-byte lines) keeps its name; the other line lengths are named after theirs
  const stdoutBuilds = STDOUT_LINE_LENGTHS.map((lineBytes): BenchBuild => {
    const lines = Math.floor(sizes.stdoutBytes / lineBytes);
    return {
      name: `stdout-${sizeName(sizes.stdoutBytes)}${lineBytes === LINE_BYTES ? '' : `-${lineBytes}B`}`,
      family: 'stdout',
      payloadBytes: lines * lineBytes,
      steps: () => `[steps.ShellCommand(name='stdout', command=['awk', ${py(awkLines(lines, lineBytes))}], logEnviron=False)]`,
      timeoutMs: 600_000,
      verify: (ctx, buildid) => verifyAllLines(ctx, buildid, lines, lineBytes),
    };
  });

  const trickleProgram = pythonTrickle(trickleLines, trickleChunkLines);
  const trickle: BenchBuild = {
    name: `trickle-${sizeName(sizes.trickleBytes)}`,
    family: 'trickle',
    payloadBytes: sizes.trickleBytes,
    // /usr/bin/python3: a pyenv python3 may come first on PATH
    steps: () => `[steps.ShellCommand(name='trickle', command=['/usr/bin/python3', '-c', ${py(trickleProgram)}], logEnviron=False)]`,
    timeoutMs: 120_000,
    verify: (ctx, buildid) => verifyAllLines(ctx, buildid, trickleLines),
  };

  const budgetEnv = `{${Object.entries(BUDGET_ENV)
    .map(([k, v]) => `${py(k)}: ${py(v)}`)
    .join(', ')}}`;
  const budget: BenchBuild = {
    name: `budget-${sizeName(sizes.budgetBytes)}`,
    family: 'budget',
    payloadBytes: sizes.budgetBytes,
    steps: () => `[steps.ShellCommand(name='budget', command=['awk', ${py(awkLines(budgetLines))}], env=${budgetEnv}, logEnviron=False)]`,
    timeoutMs: 1_800_000,
    // buildbot-worker streams all of it: ~2 min per run here, long enough to be its own average
    maxRefRuns: 1,
    verify: async (ctx, buildid, run) => {
      const s = await stdoutStats(ctx.master, buildid, 1, (line) => LINE_RE.test(line));
      const complete = s.lines === budgetLines && s.foreign === 0 && s.tailLines === 0 && s.sha256 === expectedSha(budgetLines);
      if (ctx.worker === 'ref') {
        return {
          ok: complete,
          deliveredBytes: s.bytes,
          limited: false,
          detail: complete ? `${s.lines} lines, sha256 ok` : `got ${s.lines}/${budgetLines} lines`,
        };
      }
      if (complete) return { ok: true, deliveredBytes: s.bytes, limited: false, detail: `not limited: the master stored all ${fmtMiB(s.bytes)}` };
      // the budget is a token bucket: the burst, then the rate for as long as the step ran, plus one batch
      const allowance = BUDGET_BURST + BUDGET_RATE * (run.stepS ?? 0) + BUDGET_SLACK;
      const within = s.bytes <= allowance;
      const other = s.foreign > 0 ? `, ${s.foreign} other stdout line(s) e.g. ${JSON.stringify(s.foreignSample[0])}` : '';
      return {
        ok: true,
        deliveredBytes: s.bytes,
        allowanceBytes: allowance,
        limited: within,
        detail:
          `${within ? 'limited' : 'OVER BUDGET'}: ${fmtMiB(s.bytes)} of live output (allowed ${fmtMiB(allowance)}: burst + 64 KiB/s × ${(run.stepS ?? 0).toFixed(1)} s + 64 KiB), ` +
          `plus ${s.markers} [bbagent] marker line(s) and ${s.tailLines} tail line(s) (${fmtMiB(s.tailBytes)})${other}`,
      };
    },
  };

  const steps: BenchBuild = {
    name: `steps-${sizes.steps}`,
    family: 'steps',
    payloadBytes: 0,
    steps: () => `[steps.ShellCommand(name='true-%02d' % i, command=['true'], logEnviron=False) for i in range(${sizes.steps})]`,
    timeoutMs: 300_000,
    verify: async (ctx, buildid) => {
      const { steps: rs } = await ctx.master.get<{ steps: RestStep[] }>(`/builds/${buildid}/steps`);
      const ran = rs.filter((s) => s.name.startsWith('true-') && s.results === 0).length;
      return { ok: ran === sizes.steps, detail: `${ran}/${sizes.steps} steps succeeded` };
    },
  };

  const upload: BenchBuild = {
    name: `upload-${sizeName(sizes.transferBytes)}`,
    family: 'upload',
    payloadBytes: sizes.transferBytes,
    steps: (masterDir, builder) =>
      `[steps.FileUpload(name='upload', workersrc='up.bin', masterdest=${py(path.join(masterDir, 'uploads', builder, 'up.bin'))})]`,
    timeoutMs: 600_000,
    prepare: (ctx) => {
      const src = randomFile(ctx.scratch, 'up.bin', sizes.transferBytes);
      const dir = builderDir(ctx);
      mkdirSync(dir, { recursive: true });
      rmSync(path.join(dir, 'up.bin'), { force: true });
      // a hard link: no copy, and the bytes are already in the page cache for both workers
      linkSync(src, path.join(dir, 'up.bin'));
      rmSync(path.join(ctx.masterDir, 'uploads', ctx.builder), { recursive: true, force: true });
    },
    verify: (ctx) => {
      const dest = path.join(ctx.masterDir, 'uploads', ctx.builder, 'up.bin');
      if (!existsSync(dest)) return Promise.resolve({ ok: false, detail: 'no file on the master' });
      const ok = sha256File(dest) === sha256File(path.join(ctx.scratch, 'up.bin'));
      return Promise.resolve({ ok, deliveredBytes: statSync(dest).size, detail: ok ? 'sha256 ok' : `sha256 differs (${statSync(dest).size} bytes)` });
    },
  };

  const download: BenchBuild = {
    name: `download-${sizeName(sizes.transferBytes)}`,
    family: 'download',
    payloadBytes: sizes.transferBytes,
    steps: (masterDir) => `[steps.FileDownload(name='download', mastersrc=${py(path.join(masterDir, 'down.bin'))}, workerdest='down.bin')]`,
    timeoutMs: 600_000,
    unsupported: (protocol) =>
      protocol === 'msgpack'
        ? "the 3.7 master's FileDownload over msgpack writes an empty file (a bug of the 3.7 master, see docs/compatibility.md)"
        : undefined,
    prepare: (ctx) => {
      const src = randomFile(ctx.scratch, 'down.bin', sizes.transferBytes);
      const masterSrc = path.join(ctx.masterDir, 'down.bin');
      if (!existsSync(masterSrc)) linkSync(src, masterSrc);
      mkdirSync(builderDir(ctx), { recursive: true });
      rmSync(path.join(builderDir(ctx), 'down.bin'), { force: true });
    },
    verify: (ctx) => {
      const dest = path.join(builderDir(ctx), 'down.bin');
      if (!existsSync(dest)) return Promise.resolve({ ok: false, detail: 'no file on the worker' });
      const ok = sha256File(dest) === sha256File(path.join(ctx.scratch, 'down.bin'));
      return Promise.resolve({ ok, deliveredBytes: statSync(dest).size, detail: ok ? 'sha256 ok' : `sha256 differs (${statSync(dest).size} bytes)` });
    },
  };

  const dirBytes = (i: number): number => 512 + ((i * 797) % 2048);
  let dirPayload = 0;
  for (let i = 0; i < sizes.dirFiles; i++) dirPayload += dirBytes(i);
  const dirupload: BenchBuild = {
    name: `dirupload-${sizes.dirFiles}`,
    family: 'dirupload',
    payloadBytes: dirPayload,
    steps: (masterDir, builder) =>
      `[steps.DirectoryUpload(name='dirupload', workersrc='tree', masterdest=${py(path.join(masterDir, 'uploads', builder, 'tree'))})]`,
    timeoutMs: 600_000,
    prepare: (ctx) => {
      const src = path.join(ctx.scratch, `tree-${sizes.dirFiles}`);
      if (!existsSync(src)) {
        // 2,000 files of 0.5-2.5 KiB in 20 directories
        for (let i = 0; i < sizes.dirFiles; i++) {
          const dir = path.join(src, `d${String(i % 20).padStart(2, '0')}`);
          mkdirSync(dir, { recursive: true });
          writeFileSync(path.join(dir, `f${String(i).padStart(5, '0')}.dat`), randomBytes(dirBytes(i)));
        }
      }
      const tree = path.join(builderDir(ctx), 'tree');
      // copies, not hard links: a tar writer may store a second link to an inode as a link entry
      if (!existsSync(tree)) cpSync(src, tree, { recursive: true });
      rmSync(path.join(ctx.masterDir, 'uploads', ctx.builder), { recursive: true, force: true });
    },
    verify: (ctx) => {
      const dest = path.join(ctx.masterDir, 'uploads', ctx.builder, 'tree');
      if (!existsSync(dest)) return Promise.resolve({ ok: false, detail: 'no directory on the master' });
      const want = treeDigests(path.join(ctx.scratch, `tree-${sizes.dirFiles}`));
      const got = treeDigests(dest);
      const same = [...want].filter(([rel, sha]) => got.get(rel) === sha).length;
      const ok = got.size === want.size && same === want.size;
      return Promise.resolve({ ok, detail: ok ? `${got.size} files, sha256 ok` : `${got.size}/${want.size} files, ${same} identical` });
    },
  };

  const firstOutput: BenchBuild = {
    name: 'first-output',
    family: 'first-output',
    payloadBytes: 0,
    steps: () => `[steps.ShellCommand(name='first', command='date +%s.%N; sleep ${sizes.firstOutputSleep}', logEnviron=False)]`,
    timeoutMs: 120_000,
    verify: async (ctx, buildid) => {
      let stamps = 0;
      await scanLog(ctx.master, await stepLog(ctx.master, buildid, 1), (channel, text) => {
        if (channel === 'o' && /^\d+\.\d+$/.test(text)) stamps++;
      });
      return { ok: stamps === 1, detail: `${stamps} timestamp line(s)` };
    },
  };

  // the fixed cost of a build with one step and one log on the master, for each worker: the trickle's step
  // length, one line of output, nothing polled (the master's CPU here is what a build costs it without output)
  const quiet: BenchBuild = {
    name: 'quiet',
    family: 'quiet',
    payloadBytes: 0,
    steps: () => `[steps.ShellCommand(name='quiet', command='echo quiet; sleep ${sizes.trickleSeconds}', logEnviron=False)]`,
    timeoutMs: 120_000,
    verify: async (ctx, buildid) => {
      let lines = 0;
      await scanLog(ctx.master, await stepLog(ctx.master, buildid, 1), (channel, text) => {
        if (channel === 'o' && text === 'quiet') lines++;
      });
      return { ok: lines === 1, detail: `${lines} line(s)` };
    },
  };

  return [...stdoutBuilds, trickle, budget, steps, upload, download, dirupload, firstOutput, quiet];
}

/** `<scratch>/<name>` with `bytes` random bytes, made once. */
function randomFile(scratch: string, name: string, bytes: number): string {
  const file = path.join(scratch, name);
  if (existsSync(file) && statSync(file).size === bytes) return file;
  const block = MiB;
  const parts: Buffer[] = [];
  for (let done = 0; done < bytes; done += block) parts.push(randomBytes(Math.min(block, bytes - done)));
  writeFileSync(file, Buffer.concat(parts));
  return file;
}

/** The timestamp line the first-output step printed, from a stdio log's stored content, in seconds. */
export function printedTimestamp(content: string): number | undefined {
  const m = /^o(\d+\.\d+)$/m.exec(content);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
