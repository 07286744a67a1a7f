// The protocol-neutral worker a master talks to: worker info, output settings, commands, interrupts and
// shutdown. Each protocol translates its wire calls into these and nothing else.

import { CommandHost } from '../commands/host.js';
import type { CommandArgs, CommandChannel, CommandDefinition, CommandEnv } from '../commands/types.js';
import type { Logger } from '../log.js';
import { defaultOutputSettings, parseWorkerSettings, type OutputSettings } from '../output/settings.js';

export type WorkerInfo = Record<string, unknown>;

export interface BotOptions {
  env: CommandEnv;
  commands: readonly CommandDefinition[];
  /** Collects worker info afresh at each connection (info/ files may change between connections). */
  collectInfo: () => Promise<WorkerInfo>;
  logger: Logger;
  /** The master asked the worker to shut down. */
  onShutdownRequest: () => void;
}

/** One connection's view of the worker: settings are per connection, the command host is shared. */
export class Bot {
  readonly host: CommandHost;
  private settings: OutputSettings = defaultOutputSettings();

  constructor(private readonly opts: BotOptions) {
    this.host = new CommandHost(opts.commands, opts.env);
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

  startCommand(name: string, id: string, args: CommandArgs, channel: CommandChannel): Promise<void> {
    return this.host.start({ name, id, args, channel, settings: this.settings });
  }

  interruptCommand(id: string, why: string, flushFirst: boolean): void {
    this.host.interrupt(id, why, flushFirst);
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

  get commandNames(): string[] {
    return this.opts.commands.flatMap((c) => [...c.names]);
  }
}
