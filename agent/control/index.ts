// What lets an operator see the running agent: the control socket that `bbagent status` asks, and the opt-in
// Prometheus metrics. Started by the composition root once the workers exist; neither can stop the agent: a
// socket or a port that cannot be had is logged, and the builds go on.

import { parseMetricsAddr } from '../config/metrics.js';
import { errorMessage } from '../errors.js';
import type { HostedWorker } from '../hosted-worker.js';
import type { Logger } from '../log.js';
import { makedirs } from '../fs/makedirs.js';
import { endpointFor, runDirOf } from './client.js';
import { startControlServer, type ControlHandler, type ControlServer } from './server.js';
import { collectStatus, type StatusSources } from './status.js';
import type { MetricsServer } from './metrics.js';

export interface ObserverOptions {
  /** The top-level worker's base directory: the control socket is in its .bbagent/run. */
  basedir: string;
  metricsAddr: string | null;
  version: string;
  workers: () => readonly HostedWorker[];
  loop: StatusSources['loop'];
  logger: Logger;
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
  };
  const handle: ControlHandler = (req) =>
    req.request === 'status'
      ? { ok: true, status: collectStatus(sources) }
      : { ok: false, error: `unknown request ${JSON.stringify(req.request).slice(0, 80)}` };
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
            batches: o.workers().map((h) => ({ worker: h.config.name, onBatch: (l) => h.worker.host.counters.onBatch(l) })),
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
