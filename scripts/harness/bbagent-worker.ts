// Runs bbagent as a real worker process (the built bundle, through its CLI: create-worker, then
// start --nodaemon), so integration tests, the benchmark and the demo drive it exactly as an operator would.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Protocol } from './master.js';
import { ManagedProcess, pollUntil, runCommand } from './process.js';

/** The repository root: the nearest folder up with package.json (from scripts/harness, or from build/ when bundled). */
function findRepoRoot(): string {
  let dir = typeof __dirname === 'string' ? __dirname : path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

export const REPO_ROOT = findRepoRoot();
export const BUNDLE = path.join(REPO_ROOT, 'build', 'bbagent.cjs');
/** A master's environment that finds the repository's master-side package (master/bbagent_buildbot) without installing it. */
export const MASTER_PACKAGE_ENV = { PYTHONPATH: path.join(REPO_ROOT, 'master') };

export interface BbagentWorkerOptions {
  dir: string;
  masterPort: number;
  name: string;
  password: string;
  protocol: Protocol;
  createArgs?: string[];
  env?: Record<string, string>;
  /** bbagent.json fields set after create-worker (e.g. `workers`, and a `basedir` beside theirs). */
  config?: Record<string, unknown>;
  /** Run this executable (e.g. the single executable dist/bbagent-linux-x64) instead of the bundle on this Node. */
  executable?: string;
}

/** The command line that runs bbagent with `args`: the bundle on this Node unless `executable` is given. */
function bbagentCommand(opts: BbagentWorkerOptions, args: string[]): [string, string[]] {
  return opts.executable ? [opts.executable, args] : [process.execPath, [BUNDLE, ...args]];
}

export class BbagentWorker {
  private constructor(
    readonly dir: string,
    readonly name: string,
    private proc: ManagedProcess,
    private readonly opts: BbagentWorkerOptions,
  ) {}

  static async create(opts: BbagentWorkerOptions): Promise<void> {
    mkdirSync(path.dirname(path.resolve(opts.dir)), { recursive: true });
    await runCommand(
      ...bbagentCommand(opts, [
        'create-worker',
        '--quiet',
        '--force',
        `--protocol=${opts.protocol}`,
        '--maxdelay=2',
        ...(opts.createArgs ?? []),
        path.resolve(opts.dir),
        `127.0.0.1:${opts.masterPort}`,
        opts.name,
        opts.password,
      ]),
    );
    if (opts.config) {
      const file = path.join(path.resolve(opts.dir), 'bbagent.json');
      writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), ...opts.config }, null, 2));
    }
  }

  static async start(opts: BbagentWorkerOptions): Promise<BbagentWorker> {
    await BbagentWorker.create(opts);
    const proc = await BbagentWorker.spawn(opts);
    return new BbagentWorker(path.resolve(opts.dir), opts.name, proc, opts);
  }

  private static spawn(opts: BbagentWorkerOptions): Promise<ManagedProcess> {
    const [command, args] = bbagentCommand(opts, ['start', '--nodaemon', path.resolve(opts.dir)]);
    return ManagedProcess.spawn({
      command,
      args,
      cwd: path.resolve(opts.dir),
      env: { ...process.env, ...opts.env },
      label: `bbagent ${opts.name}`,
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.running;
  }

  get exited(): Promise<number | string> {
    return this.proc.exited;
  }

  /** What the agent printed (its log, in the foreground). */
  get output(): string {
    return this.proc.capturedOutput;
  }

  async waitForOutput(re: RegExp, timeoutMs = 30_000): Promise<string> {
    return pollUntil(() => re.exec(this.output)?.[0], { timeoutMs, what: `bbagent output matching ${re}` });
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.signal(sig);
  }

  async stop(): Promise<number | string> {
    return this.proc.stop(15_000);
  }

  async restart(): Promise<void> {
    await this.stop();
    this.proc = await BbagentWorker.spawn(this.opts);
  }
}
