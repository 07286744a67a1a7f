// Worker info sent to the master at each connection: every key buildbot-worker sends, in its order, plus
// host facts (OS distribution, architecture, CPU model, memory) under extra keys the master stores.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Platform } from '../../platforms/types.js';
import { COMMAND_VERSION, type CommandDefinition } from '../commands/types.js';
import type { Logger } from '../log.js';

export interface WorkerInfoOptions {
  basedir: string;
  platform: Platform;
  commands: readonly CommandDefinition[];
  environ: Record<string, string>;
  numcpus: number | null;
  version: string;
  deleteLeftoverDirs: boolean;
  logger: Logger;
  /** Host facts from systeminformation (cached: they do not change while the agent runs). */
  hostFacts?: () => Promise<Record<string, string | number>>;
}

export function workerCommands(commands: readonly CommandDefinition[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of commands) for (const n of c.names) out[n] = COMMAND_VERSION;
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
  info['delete_leftover_dirs'] = o.deleteLeftoverDirs;
  if (o.hostFacts) {
    try {
      Object.assign(info, await o.hostFacts());
    } catch (err) {
      o.logger.warn(`cannot collect host facts: ${(err as Error).message}`);
    }
  }
  return info;
}

/** OS and hardware facts from systeminformation, under bbagent_* keys (strings and numbers only). */
export async function systemFacts(): Promise<Record<string, string | number>> {
  const si = await import('systeminformation');
  const [osInfo, cpu, mem] = await Promise.all([si.osInfo(), si.cpu(), si.mem()]);
  return {
    bbagent_os_distro: osInfo.distro,
    bbagent_os_release: osInfo.release,
    bbagent_os_kernel: osInfo.kernel,
    bbagent_arch: osInfo.arch,
    bbagent_cpu_model: `${cpu.manufacturer} ${cpu.brand}`.trim(),
    bbagent_cpu_cores: cpu.cores,
    bbagent_mem_total: mem.total,
    bbagent_agent: 'bbagent',
  };
}
