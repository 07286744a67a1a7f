// The human form of `bbagent status`: one block per worker, running commands as a table.

import type { AgentStatus } from '../control/status.js';
import type { WorkerStatus } from '../hosted-worker.js';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatDuration(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** Columns padded to their widest cell, two spaces apart. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

const STATE_WORDS: Record<WorkerStatus['connection']['state'], string> = {
  connected: 'connected',
  connecting: 'connecting',
  waiting: 'not connected, waiting to retry',
  'gave-up': 'gave up (maxretries)',
  stopped: 'stopped',
};

function sum(o: Record<string, number | undefined>): number {
  return Object.values(o).reduce<number>((a, b) => a + (b ?? 0), 0);
}

function workerLines(w: WorkerStatus, now: number): string[] {
  const c = w.connection;
  const since = c.connectedSince !== null ? ` since ${new Date(c.connectedSince).toISOString()} (${formatDuration((now - c.connectedSince) / 1000)} ago)` : '';
  const lastError = c.lastError ? `${c.lastError.message} (${formatDuration((now - c.lastError.at) / 1000)} ago)` : 'none';
  const finished: Record<string, number> = {};
  for (const byResult of Object.values(w.commands.finished)) for (const [r, n] of Object.entries(byResult)) finished[r] = (finished[r] ?? 0) + (n ?? 0);
  const results = Object.entries(finished).map(([r, n]) => `${r} ${n}`);
  const cmd = w.commands;
  const lines = [
    `worker '${w.name}' in ${w.basedir}`,
    ...table([
      ['  master', `${c.master}${c.protocol ? ` (${c.protocol})` : ''}`],
      ['  state', `${STATE_WORDS[c.state]}${since}`],
      ['  reconnects', `${c.reconnects} (failed attempts ${c.failedAttempts})`],
      ['  last error', lastError],
      ['  commands', `${sum(cmd.started)} started, ${sum(finished)} ended${results.length ? ` (${results.join(', ')})` : ''}, ${cmd.running.length} running`],
      ['  output', `${formatBytes(cmd.outputSentBytes)} sent, ${formatBytes(cmd.outputSpooledBytes)} spooled, ${formatBytes(cmd.outputDroppedBytes)} dropped`],
    ]),
  ];
  if (cmd.running.length > 0) {
    const rows = [['    BUILDER', 'COMMAND', 'ID', 'ELAPSED', 'SENT', 'WORKDIR']];
    for (const r of cmd.running) {
      rows.push([`    ${r.builder ?? '-'}`, r.command, r.id, formatDuration(r.elapsedS), formatBytes(r.outputSentBytes), r.workdir ?? '-']);
    }
    lines.push(...table(rows));
  }
  return lines;
}

export function formatStatus(s: AgentStatus): string[] {
  const up = formatDuration((s.now - s.startedAt) / 1000);
  const loop = `event loop lag ${s.eventLoop.lagMs} ms (longest stall ${s.eventLoop.maxStallMs} ms)`;
  const lines = [`bbagent ${s.version}, pid ${s.pid}, up ${up}, RSS ${formatBytes(s.rssBytes)}, ${loop}`];
  if (s.metricsUrl !== null) lines.push(`metrics: ${s.metricsUrl}`);
  // absent from an older agent's reply
  if (s.draining === true) lines.push('draining: true (a stop is under way: the agent exits once no command runs)');
  for (const w of s.workers) lines.push('', ...workerLines(w, s.now));
  return lines;
}
