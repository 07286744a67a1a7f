// One worker's output set-up: budgets, redaction set and spool, made from its settings in one place, and the
// output pipeline of each command its host runs (the host asks this object, and knows nothing of spools).

import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkerConfig } from '../config/schema.js';
import { AgentError } from '../errors.js';
import { BASEDIR_LAYOUT } from '../layout.js';
import type { Logger } from '../log.js';
import type { MessageSender } from './buffer.js';
import { TokenBucket } from './budget.js';
import { CommandOutput, PLAIN_OUTPUT, type OutputOptions } from './command-output.js';
import { limitsFromStepEnv, type OutputLimits } from './limits.js';
import type { OutputSettings } from './settings.js';
import { pruneSpools, Spool, type SpoolLimits, type SpoolOptions } from './spool.js';

/** Where over-budget steps keep their full output. */
export interface SpoolSetup {
  dir: string;
  limits: SpoolLimits;
  /** Opens a spool (default: a Spool in `dir`); tests pass one over a file that misbehaves. */
  open?: (dir: string, name: string, opts: SpoolOptions) => Spool;
}

export interface OutputSetupOptions {
  options: OutputOptions;
  /** Absent: no spooling (a step over budget with policy spool keeps only head and tail). */
  spool?: SpoolSetup;
  /** How long a command's output may take to finish after the command ended (default: the host's bound). */
  finishTimeoutMs?: number;
}

/** Where a command's output goes: the protocol's channel, as the pipeline sees it. */
export interface OutputSink {
  send: MessageSender;
  /** Bytes the connection has not sent yet (for backpressure). */
  backlog: () => number;
  /** The protocol sends only line text (PB, lean msgpack). */
  textOnly: boolean;
}

export class OutputSetup {
  constructor(private readonly setup: OutputSetupOptions = { options: PLAIN_OUTPUT }) {}

  /** The output pipeline of one command, with its own spool file (opened only if the step goes over budget). */
  pipeline(command: { name: string; id: string }, settings: OutputSettings, sink: OutputSink, now: () => number, logger: Logger): CommandOutput {
    const spool = this.setup.spool;
    const options: OutputOptions = spool
      ? { ...this.setup.options, openSpool: (onFailure) => openSpool(spool, command, { logger, onFailure }) }
      : this.setup.options;
    return new CommandOutput(settings, options, sink.send, now, undefined, sink.backlog, sink.textOnly);
  }

  /** A step's limits: its BBAGENT_OUTPUT_* variables over the configured ones; throws E_OUTPUT_LIMIT. */
  stepLimits(stepEnv: unknown): OutputLimits {
    return limitsFromStepEnv(this.setup.options.limits, stepEnv);
  }

  get finishTimeoutMs(): number | undefined {
    return this.setup.finishTimeoutMs;
  }

  /** The options every pipeline starts from (budgets, redaction set). */
  get options(): OutputOptions {
    return this.setup.options;
  }
}

function openSpool(spool: SpoolSetup, command: { name: string; id: string }, opts: SpoolOptions): Spool {
  pruneSpools(spool.dir, spool.limits, Date.now(), opts.logger);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = `${stamp}-${command.name}-${command.id}`.replace(/[^A-Za-z0-9._-]/g, '_');
  return spool.open ? spool.open(spool.dir, file, opts) : new Spool(spool.dir, file, opts);
}

/**
 * The worker password is redacted from build output when it has at least this many characters. A shorter
 * one would turn ordinary text into <redacted> wherever it occurs (a password "pass" in "passed"), and is
 * too easy to guess to be worth hiding; 6 is the Buildkite agent's bound for redacted values (RedactLengthMin).
 */
export const MIN_REDACTED_PASSWORD_LENGTH = 6;

/** The budget of all steps of the agent together (all its workers share it); null: unlimited. */
export function agentOutputBucket(config: Pick<WorkerConfig, 'agentOutputRate' | 'agentOutputBurst'>): TokenBucket | null {
  return config.agentOutputRate === null ? null : new TokenBucket(config.agentOutputRate, config.agentOutputBurst, () => Date.now());
}

/**
 * One worker's output set-up from its config: its redaction set (its `redact`, `redactFile` and its own
 * password), the per-step budgets, the agent's shared bucket, and its spool in BASEDIR/spool.
 */
export function outputSetupFromConfig(config: WorkerConfig, basedir: string, agentBucket: TokenBucket | null, logger?: Logger): OutputSetup {
  return new OutputSetup({
    options: {
      limits: { rate: config.outputRate, burst: config.outputBurst, policy: config.outputPolicy },
      agentBucket,
      redact: redactionSet(config, logger),
      collapseProgress: config.collapseProgress,
      batchBytes: config.outputBatchBytes,
      batching: config.outputBatching,
    },
    spool: { dir: path.join(basedir, BASEDIR_LAYOUT.spool), limits: { maxBytes: config.spoolMaxBytes, maxAgeS: config.spoolMaxAgeS } },
  });
}

/** The values replaced by <redacted> in a worker's output; throws E_CONFIG when redactFile cannot be read. */
export function redactionSet(config: Pick<WorkerConfig, 'redact' | 'redactFile' | 'password'>, logger?: Logger): string[] {
  const redact = [...config.redact];
  if (config.password.length >= MIN_REDACTED_PASSWORD_LENGTH) redact.push(config.password);
  else if (config.password) {
    logger?.warn(
      `the worker password is shorter than ${MIN_REDACTED_PASSWORD_LENGTH} characters: it is not redacted from build output ` +
        `(it would mangle ordinary text) and is easy to guess; use a longer one`,
    );
  }
  if (config.redactFile) {
    try {
      redact.push(
        ...readFileSync(config.redactFile, 'utf8')
          .split('\n')
          .map((l) => l.replace(/\r$/, ''))
          .filter(Boolean),
      );
    } catch (err) {
      throw new AgentError('E_CONFIG', `redactFile: cannot read ${config.redactFile}: ${(err as Error).message}`);
    }
  }
  return redact;
}
