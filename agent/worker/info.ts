// Worker info sent to the master at each connection: every key buildbot-worker sends, in its order, plus
// host facts (OS distribution, architecture, CPU model, memory) under extra keys the master stores.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HostFacts } from '../../platforms/types.js';
import { COMMAND_VERSION, type CommandDefinition } from '../commands/types.js';
import type { Logger } from '../log.js';

export interface WorkerInfoOptions {
  basedir: string;
  platform: HostFacts;
  commands: readonly CommandDefinition[];
  /** The environment builds get (the agent's own BBAGENT_* variables already removed). */
  environ: Record<string, string>;
  numcpus: number | null;
  version: string;
  deleteLeftoverDirs: boolean;
  logger: Logger;
}

export function workerCommands(commands: readonly CommandDefinition[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of commands) for (const n of c.names) out[n] = c.version ?? COMMAND_VERSION;
  return out;
}

function infoFiles(basedir: string, logger: Logger): Record<string, string> {
  const dir = path.join(basedir, 'info');
  const out: Record<string, string> = {};
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const f of names) {
    const file = path.join(dir, f);
    try {
      if (statSync(file).isFile()) out[f] = readFileSync(file, 'utf8');
    } catch (err) {
      logger.warn(`cannot read worker info file ${file}: ${(err as Error).message}`);
    }
  }
  return out;
}

export async function collectWorkerInfo(o: WorkerInfoOptions): Promise<Record<string, unknown>> {
  const info: Record<string, unknown> = infoFiles(o.basedir, o.logger);
  for (const [k, v] of Object.entries(o.platform.osRelease())) info[`os_${k}`] = v;
  info['environ'] = { ...o.environ };
  info['system'] = o.platform.osName;
  info['basedir'] = o.basedir;
  info['numcpus'] = o.numcpus ?? (os.availableParallelism?.() || os.cpus().length || 1);
  info['version'] = o.version;
  info['worker_commands'] = workerCommands(o.commands);
  // buildbot-worker's create-worker writes the flag as Twisted's 0/1 into buildbot.tac, and the master keeps
  // (and shows) whatever type it gets: the integer, as the reference sends it.
  info['delete_leftover_dirs'] = o.deleteLeftoverDirs ? 1 : 0;
  try {
    Object.assign(info, hostFacts(o.platform));
  } catch (err) {
    o.logger.warn(`cannot collect host facts: ${(err as Error).message}`);
  }
  return info;
}

/**
 * OS and hardware facts under bbagent_* keys (strings and numbers only), for masters and people choosing
 * workers. All of them come from files and OS calls (node:os, os-release, SystemVersion.plist): no program
 * runs, so collecting them costs well under a millisecond and cannot fail for lack of a tool.
 */
export function hostFacts(platform: HostFacts): Record<string, string | number> {
  const product = platform.osProduct();
  const cpus = os.cpus();
  return {
    bbagent_os_distro: product.name,
    bbagent_os_release: product.version,
    bbagent_os_kernel: os.release(),
    bbagent_arch: os.arch(),
    bbagent_cpu_model: cpus[0]?.model.trim() || os.machine(),
    bbagent_cpu_cores: os.availableParallelism?.() || cpus.length || 1,
    bbagent_mem_total: os.totalmem(),
    bbagent_agent: 'bbagent',
  };
}
