// The scheduled task \bbagent\<name> that bbagent installed on Windows before it installed a real service. It is
// only ever removed now: `service uninstall` ends it (and the worker tree it started) and deletes it, and
// `service install` refuses to add a service beside one.

import { readFileSync } from 'node:fs';
import { runChecked, type ServiceHost } from '../service/common.js';

/** The Task Scheduler folder of bbagent's old tasks. */
export const TASK_FOLDER = '\\bbagent';

/** The task's path in the Task Scheduler: \\bbagent\\<name>. */
export function taskName(name: string): string {
  return `${TASK_FOLDER}\\${name}`;
}

export interface LegacyTaskTools {
  host: ServiceHost;
  schtasks: string;
  taskkill: string;
}

export async function legacyTaskExists(t: LegacyTaskTools, name: string): Promise<boolean> {
  return (await t.host.run(t.schtasks, ['/Query', '/TN', taskName(name)])).code === 0;
}

/**
 * Ends the task (only its supervisor, `bbagent service run`), then the worker's tree named by the pidfile, and
 * deletes the task. False when there was none.
 */
export async function removeLegacyTask(t: LegacyTaskTools, name: string, pidFile: string): Promise<boolean> {
  if (!(await legacyTaskExists(t, name))) return false;
  await t.host.run(t.schtasks, ['/End', '/TN', taskName(name)]);
  let pid: number | undefined;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim()) || undefined;
  } catch {
    pid = undefined;
  }
  if (pid !== undefined) await t.host.run(t.taskkill, ['/PID', String(pid), '/T', '/F']);
  await runChecked(t.host.run, t.schtasks, ['/Delete', '/TN', taskName(name), '/F']);
  return true;
}
