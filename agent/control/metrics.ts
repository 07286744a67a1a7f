// Opt-in Prometheus metrics (metricsAddr): an HTTP endpoint serving /metrics in the text exposition format,
// made with prom-client. It loads only when metrics are on (prom-client costs ~8 ms to load and the agent does
// not pay that otherwise). Values are read from the same read-only snapshots as `bbagent status` at each
// scrape; only the batch sizes are observed as they happen (a histogram cannot be rebuilt from a snapshot).

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as Prom from 'prom-client';
import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { BatchListener } from '../worker/stats.js';
import type { AgentStatus } from './status.js';

/** Batch sizes in bytes: the master's default buffer is 64 KiB; outputBatchBytes may raise it to 512 KiB. */
export const BATCH_BUCKETS = [256, 1024, 4096, 16384, 65536, 262144, 524288, 1048576];

export interface MetricsSources {
  status: () => AgentStatus;
  /** Each worker's batch listener registration, by the worker's name and its current master. */
  batches: readonly { worker: string; master: () => string; onBatch(listener: BatchListener): () => void }[];
}

export interface MetricsServer {
  /** http://HOST:PORT/metrics, the port as bound (metricsAddr may give 0). */
  readonly url: string;
  close(): void;
}

type Labels = Record<string, string | number>;

/** A counter or gauge whose samples are read from the scrape's status snapshot (`read`) when it is collected. */
function snapshotMetric(
  prom: typeof Prom,
  registry: Prom.Registry,
  kind: 'counter' | 'gauge',
  spec: { name: string; help: string; labelNames: string[] },
  read: (s: AgentStatus) => [Labels, number][],
  status: () => AgentStatus,
): void {
  const opts = { ...spec, registers: [registry] };
  if (kind === 'gauge') {
    new prom.Gauge({
      ...opts,
      collect() {
        this.reset();
        for (const [labels, v] of read(status())) this.set(labels, v);
      },
    });
  } else {
    // a counter's value is the agent's own running total: set as one increment from zero at each scrape
    new prom.Counter({
      ...opts,
      collect() {
        this.reset();
        for (const [labels, v] of read(status())) this.inc(labels, v);
      },
    });
  }
}

/**
 * Every metric of the agent, per worker where it is a worker's: labels `worker` (its name) and `master` (the
 * master it is attached to or trying), since two workers of one agent may have the same name on two masters.
 */
function defineMetrics(prom: typeof Prom, registry: Prom.Registry, status: () => AgentStatus): void {
  const def = (kind: 'counter' | 'gauge', name: string, help: string, labelNames: string[], read: (s: AgentStatus) => [Labels, number][]): void =>
    snapshotMetric(prom, registry, kind, { name, help, labelNames }, read, status);
  const perWorker = (f: (w: AgentStatus['workers'][number]) => number) => (s: AgentStatus) =>
    s.workers.map((w): [Labels, number] => [{ worker: w.name, master: w.connection.master }, f(w)]);
  def('gauge', 'bbagent_info', 'The agent version (always 1)', ['version'], (s) => [[{ version: s.version }, 1]]);
  def('gauge', 'bbagent_connection_up', '1 when the worker is attached to its master, else 0', ['worker', 'master', 'protocol'], (s) =>
    s.workers.map((w) => [{ worker: w.name, master: w.connection.master, protocol: w.connection.protocol ?? '' }, w.connection.state === 'connected' ? 1 : 0]),
  );
  def(
    'counter',
    'bbagent_connection_reconnects_total',
    'Sessions attached after the first',
    ['worker', 'master'],
    perWorker((w) => w.connection.reconnects),
  );
  def(
    'counter',
    'bbagent_connection_failed_attempts_total',
    'Connection attempts that failed',
    ['worker', 'master'],
    perWorker((w) => w.connection.failedAttempts),
  );
  def(
    'gauge',
    'bbagent_commands_running',
    'Commands running now',
    ['worker', 'master'],
    perWorker((w) => w.commands.running.length),
  );
  def('counter', 'bbagent_commands_started_total', 'Commands started, by remote command name', ['worker', 'master', 'command'], (s) =>
    s.workers.flatMap((w) =>
      Object.entries(w.commands.started).map(([command, n]): [Labels, number] => [{ worker: w.name, master: w.connection.master, command }, n]),
    ),
  );
  def(
    'counter',
    'bbagent_commands_finished_total',
    'Commands ended, by name and result (success, failure, exception, interrupted)',
    ['worker', 'master', 'command', 'result'],
    (s) =>
      s.workers.flatMap((w) =>
        Object.entries(w.commands.finished).flatMap(([command, byResult]) =>
          Object.entries(byResult).map(([result, n]): [Labels, number] => [{ worker: w.name, master: w.connection.master, command, result }, n ?? 0]),
        ),
      ),
  );
  def(
    'counter',
    'bbagent_output_sent_bytes_total',
    'Bytes of build output sent to the master',
    ['worker', 'master'],
    perWorker((w) => w.commands.outputSentBytes),
  );
  def(
    'counter',
    'bbagent_output_spooled_bytes_total',
    'Bytes of build output over budget kept in the spool',
    ['worker', 'master'],
    perWorker((w) => w.commands.outputSpooledBytes),
  );
  def(
    'counter',
    'bbagent_output_dropped_bytes_total',
    'Bytes of build output over budget kept nowhere',
    ['worker', 'master'],
    perWorker((w) => w.commands.outputDroppedBytes),
  );
  def('gauge', 'bbagent_event_loop_lag_seconds', 'How late the last event-loop check ran', [], (s) => [[{}, s.eventLoop.lagMs / 1000]]);
  def('gauge', 'bbagent_event_loop_max_stall_seconds', 'The longest event-loop stall since the agent started', [], (s) => [
    [{}, s.eventLoop.maxStallMs / 1000],
  ]);
  def('counter', 'bbagent_event_loop_stalls_total', 'Event-loop stalls of 100 ms or more', [], (s) => [[{}, s.eventLoop.stalls]]);
}

/** Loads prom-client and serves the metrics on host:port until close(); E_METRICS when it cannot listen. */
export async function startMetrics(addr: { host: string; port: number }, sources: MetricsSources, logger: Logger): Promise<MetricsServer> {
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  /** The status of the scrape under way: every metric reads the same one. */
  let snapshot: AgentStatus | undefined;
  defineMetrics(prom, registry, () => (snapshot ??= sources.status()));
  // process_resident_memory_bytes, process_cpu_seconds_total, nodejs_eventloop_lag_*, nodejs_heap_* ...
  prom.collectDefaultMetrics({ register: registry });
  const batches = new prom.Histogram({
    name: 'bbagent_output_batch_bytes',
    help: 'Size of each batch of build output sent to the master',
    labelNames: ['worker', 'master'],
    buckets: BATCH_BUCKETS,
    registers: [registry],
  });
  const unlisten = sources.batches.map((b) => b.onBatch((bytes) => batches.observe({ worker: b.worker, master: b.master() }, bytes)));
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    snapshot = undefined;
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        logger.warn(`metrics: cannot collect: ${errorMessage(err)}`);
        res.writeHead(500).end();
      },
    );
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new AgentError('E_METRICS', `metrics: cannot listen on ${addr.host}:${addr.port}: ${err.message}`)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  server.on('error', (err) => logger.warn(`metrics: ${err.message}`));
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${host}:${bound.port}/metrics`,
    close: () => {
      for (const u of unlisten) u();
      server.close();
      server.closeAllConnections();
    },
  };
}
