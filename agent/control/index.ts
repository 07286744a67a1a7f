// What lets an operator see the running agent: the control socket that `bbagent status` asks, and the opt-in
// Prometheus metrics. Started by the composition root once the workers exist; a socket or a port that cannot be
// had is logged, and the builds go on. The one request that acts is `drain` (`bbagent stop --drain`, the Windows
// service's stop): the agent's first stop stage, as a first SIGTERM.

import { parseMetricsAddr } from '../config/metrics.js';
import { errorMessage } from '../errors.js';
import type { HostedWorker } from '../hosted-worker.js';
import type { Logger } from '../log.js';
import { makedirs } from '../fs/makedirs.js';
import { endpointFor, runDirOf } from './client.js';
import { startControlServer, type ControlHandler, type ControlRequest, type ControlServer } from './server.js';
import { collectStatus, type StatusSources } from './status.js';
import type { MetricsServer } from './metrics.js';

export interface ObserverOptions {
  /** The top-level worker's base directory: the control socket is in its .bbagent/run. */
  basedir: string;
  metricsAddr: string | null;
  version: string;
  workers: () => readonly HostedWorker[];
  loop: StatusSources['loop'];
  /** The agent's stop stages: drain() starts the first (interrupting after timeoutS, when given); 'already' when a stop is under way. */
  stages: { drain(why: string, timeoutS?: number): 'started' | 'already'; readonly draining: boolean };
  logger: Logger;
}

/** The longest drain timeout a request may give: a day, as the service's stop timeout. */
export const MAX_DRAIN_TIMEOUT_S = 86_400;

/** The reply to {"request": "drain", "timeoutS"?: N}: the stage started or already under way, and what still runs. */
export type DrainReply = {
  ok: true;
  drain: 'started' | 'already';
  pid: number;
  running: number;
};

function answerDrain(req: ControlRequest, o: ObserverOptions): DrainReply | { ok: false; error: string } {
  const t = req['timeoutS'];
  if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > MAX_DRAIN_TIMEOUT_S)) {
    return { ok: false, error: `timeoutS must be a whole number of seconds from 1 to ${MAX_DRAIN_TIMEOUT_S}, got ${JSON.stringify(t).slice(0, 40)}` };
  }
  const drain = o.stages.drain('over the control socket', t);
  const running = o.workers().reduce((n, h) => n + h.worker.host.runningCount, 0);
  return { ok: true, drain, pid: process.pid, running };
}

export interface Observers {
  close(): void;
}

export function startObservers(o: ObserverOptions): Observers {
  let control: ControlServer | undefined;
  let metrics: MetricsServer | undefined;
  let closed = false;
  const sources: StatusSources = {
    version: o.version,
    startedAt: Date.now(),
    workers: o.workers,
    loop: o.loop,
    metricsUrl: () => metrics?.url ?? null,
    draining: () => o.stages.draining,
  };
  const handle: ControlHandler = (req) => {
    if (req.request === 'status') return { ok: true, status: collectStatus(sources) };
    if (req.request === 'drain') return answerDrain(req, o);
    return { ok: false, error: `unknown request ${JSON.stringify(req.request).slice(0, 80)}` };
  };
  void Promise.resolve()
    .then(() => {
      makedirs(runDirOf(o.basedir), { existOk: true, mode: 0o700 });
      return startControlServer(endpointFor(o.basedir, 'agent'), handle, o.logger);
    })
    .then(
      (s) => {
        if (closed) s.close();
        else control = s;
      },
      (err: unknown) => o.logger.warn(`bbagent status will not answer: ${errorMessage(err)}`),
    );
  const addr = o.metricsAddr === null ? undefined : parseMetricsAddr(o.metricsAddr);
  if (addr !== undefined) {
    void import('./metrics.js')
      .then(({ startMetrics }) =>
        startMetrics(
          addr,
          {
            status: () => collectStatus(sources),
            batches: o.workers().map((h) => ({
              worker: h.config.name,
              master: () => h.status().connection.master,
              onBatch: (l) => h.worker.host.counters.onBatch(l),
            })),
          },
          o.logger,
        ),
      )
      .then(
        (m) => {
          if (closed) return m.close();
          metrics = m;
          o.logger.info(`metrics at ${m.url}`);
        },
        (err: unknown) => o.logger.error(`no metrics: ${errorMessage(err)}`),
      );
  }
  return {
    close: () => {
      closed = true;
      control?.close();
      metrics?.close();
    },
  };
}
