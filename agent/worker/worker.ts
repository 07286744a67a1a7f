// The protocol-neutral worker a master talks to: worker info, output settings, commands, interrupts and
// shutdown. Each protocol translates its wire calls into these and nothing else.

import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { confinePath } from '../commands/args.js';
import { makedirs } from '../fs/makedirs.js';
import { CommandHost } from './command-host.js';
import type { CommandArgs, CommandChannel, CommandDefinition, CommandEnv } from '../commands/types.js';
import { workerCommands } from './info.js';
import type { Logger } from '../log.js';
import { defaultOutputSettings, parseWorkerSettings, type OutputSettings } from '../output/settings.js';
import { AgentError } from '../errors.js';
import type { OutputSetup } from '../output/setup.js';
import { AGENT_OWNED_DIRS, BASEDIR_LAYOUT } from '../layout.js';

export type WorkerInfo = Record<string, unknown>;

/** What the agent keeps in each of its own directories, for the warning about a builder that shares one. */
const OWNED_DIR_USE: Record<string, string> = {
  [BASEDIR_LAYOUT.info]: 'the files at its top are sent to the master as worker info',
  [BASEDIR_LAYOUT.spool]: 'the full logs (*.log.gz) at its top are pruned by size and age',
  [BASEDIR_LAYOUT.state]: 'the journals under temp-files/ name files that the next start removes',
  [BASEDIR_LAYOUT.cache]: 'downloaded builds and their extracted trees; opening the cache removes any file there it does not know',
};

export interface WorkerOptions {
  env: CommandEnv;
  commands: readonly CommandDefinition[];
  /** Collects worker info afresh at each connection (info/ files may change between connections). */
  collectInfo: () => Promise<WorkerInfo>;
  logger: Logger;
  /** The master asked the worker to shut down. */
  onShutdownRequest: () => void;
  /** Delete directories in basedir that no builder uses (setBuilderList); otherwise only log them. */
  deleteLeftoverDirs?: boolean;
  /** The version string reported to the master. */
  version?: string;
  /** Output budgets, redaction, progress collapsing, spool (default: exactly buildbot-worker's output). */
  output?: OutputSetup;
}

/** Where a command started on a builder (PB) runs: relative paths resolve against the builder directory. */
export interface BuilderScope {
  builder: string;
}

/** One connection's view of the worker: settings are per connection, the command host is shared. */
export class Worker {
  readonly host: CommandHost;
  private settings: OutputSettings = defaultOutputSettings();
  /** builder name -> builddir (relative to basedir), from the last setBuilderList. */
  private readonly builders = new Map<string, string>();
  /** builder name -> id of its current command (PB runs one command per builder). */
  private readonly builderCommand = new Map<string, string>();

  constructor(private readonly opts: WorkerOptions) {
    this.host = new CommandHost(opts.commands, opts.env, opts.output);
  }

  print(message: string): void {
    this.opts.logger.info(`message from master: ${message}`);
  }

  workerInfo(): Promise<WorkerInfo> {
    return this.opts.collectInfo();
  }

  /** Validates and stores the master's output settings for commands started later. */
  setWorkerSettings(args: unknown): void {
    this.settings = parseWorkerSettings(args);
  }

  resetSettings(): void {
    this.settings = defaultOutputSettings();
  }

  /**
   * Starts a command. With a builder scope (PB), the master sent paths relative to the builder directory
   * and a builder runs one command at a time: a leftover command is dropped, as buildbot-worker does.
   */
  startCommand(name: string, id: string, args: CommandArgs, channel: CommandChannel, scope?: BuilderScope): Promise<void> {
    if (!scope) return this.host.start({ name, id, args, channel, settings: this.settings });
    const builddir = this.builders.get(scope.builder);
    if (builddir === undefined) throw new AgentError('E_NO_BUILDER', `no builder named '${scope.builder}' on this worker`);
    const previous = this.builderCommand.get(scope.builder);
    if (previous !== undefined && this.host.isRunning(previous)) {
      this.opts.logger.warn(`builder ${scope.builder}: leftover command ${previous}, dropping it`);
      this.host.abandon(previous);
    }
    this.builderCommand.set(scope.builder, id);
    const builderDir = path.join(this.opts.env.basedir, builddir);
    return this.host.start({ name, id, args, channel, settings: this.settings, builderDir, builder: scope.builder });
  }

  interruptCommand(id: string, why: string, flushFirst: boolean): void {
    this.host.interrupt(id, why, flushFirst);
  }

  /** Interrupts the current command of a builder (PB's interruptCommand ignores the step id). */
  interruptBuilderCommand(builder: string, why: string): void {
    const id = this.builderCommand.get(builder);
    if (id === undefined) {
      this.opts.logger.info(`builder ${builder}: asked to interrupt, but no command is running`);
      return;
    }
    this.host.interrupt(id, why, false);
  }

  /**
   * Sets the builders the master will use (PB): creates their directories, silently kills the commands of
   * builders no longer wanted, and deletes or logs leftover directories. Returns the wanted builder names.
   */
  setBuilderList(wanted: readonly (readonly [string, string])[]): string[] {
    const basedir = this.opts.env.basedir;
    const wantedNames = new Set(wanted.map(([n]) => n));
    // The agent's own directories (info, spool, bookkeeping) are never a builder's leftovers.
    const wantedDirs = new Set([...wanted.map(([, d]) => d), ...AGENT_OWNED_DIRS]);
    for (const [name, builddir] of wanted) {
      const old = this.builders.get(name);
      if (old !== undefined && old !== builddir) this.opts.logger.info(`changing builddir for builder ${name} from ${old} to ${builddir}`);
      this.builders.set(name, builddir);
      this.warnIfShared(name, builddir);
      try {
        confinePath(this.opts.env, path.join(basedir, builddir));
      } catch (err) {
        // a confined worker creates nothing outside BASEDIR; every command on this builder is refused the same way
        this.opts.logger.warn(`builder ${name}: not creating its directory: ${(err as Error).message}`);
        continue;
      }
      makedirs(path.join(basedir, builddir), { existOk: true });
    }
    for (const name of [...this.builders.keys()]) {
      if (wantedNames.has(name)) continue;
      const id = this.builderCommand.get(name);
      if (id !== undefined) this.host.abandon(id);
      this.builders.delete(name);
      this.builderCommand.delete(name);
    }
    for (const entry of readdirSync(basedir)) {
      const full = path.join(basedir, entry);
      let isDir = false;
      try {
        isDir = statSync(full).isDirectory();
      } catch {
        continue;
      }
      if (!isDir || wantedDirs.has(entry)) continue;
      if (this.opts.deleteLeftoverDirs) {
        this.opts.logger.info(`Deleting directory '${entry}' that is not being used by the buildmaster`);
        try {
          rmSync(full, { recursive: true, force: true });
        } catch (err) {
          this.opts.logger.warn(`Cannot remove directory '${entry}': ${(err as Error).message}`);
        }
      } else {
        this.opts.logger.info(`I have a leftover directory '${entry}' that is not being used by the buildmaster: you can delete it now`);
      }
    }
    return wanted.map(([n]) => n);
  }

  /**
   * A builder directory in (or equal to) one of the agent's own directories shares it with the agent. It is
   * used all the same, as buildbot-worker uses a builder directory named `info`, and msgpack masters (which
   * send no builder list) name such paths too; rmdir keeps only those directories themselves.
   */
  private warnIfShared(name: string, builddir: string): void {
    const basedir = this.opts.env.basedir;
    const rel = path.relative(basedir, path.resolve(basedir, builddir));
    const owned = rel.split(path.sep)[0];
    if (owned === undefined || !AGENT_OWNED_DIRS.includes(owned)) return;
    const dir = path.join(basedir, owned);
    this.opts.logger.warn(
      `builder ${name}: its directory '${builddir}' is ${rel === owned ? '' : 'inside '}${dir}, the agent's own directory, ` +
        `which the builder then shares: ${OWNED_DIR_USE[owned] ?? 'the agent keeps its files there'}, and rmdir never removes ${dir} itself. ` +
        `Give the builder another workerbuilddir on the master.`,
    );
  }

  /** name -> version of every command (PB's getCommands). */
  commandVersions(): Record<string, string> {
    return workerCommands(this.opts.commands);
  }

  get version(): string {
    return this.opts.version ?? 'bbagent';
  }

  shutdown(): void {
    this.opts.logger.info('worker shutting down on command from master');
    this.opts.onShutdownRequest();
  }

  /** The connection dropped: running commands are killed and report nothing more (as buildbot-worker). */
  connectionLost(): void {
    if (this.host.runningCount) this.opts.logger.warn(`connection lost: killing ${this.host.runningCount} running command(s)`);
    this.host.abandonAll();
  }
}
