// The Prometheus endpoint: values read from a status snapshot at each scrape (connection up, reconnects,
// commands by name and result, output bytes), batch sizes as a histogram fed as batches go out, the process's
// default metrics; only GET /metrics is served. The metricsAddr setting: HOST:PORT, loopback unless allowed.

import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config/load.js';
import { isLoopbackHost, metricsAddrFault, parseMetricsAddr } from '../../agent/config/metrics.js';
import { startMetrics, type MetricsServer } from '../../agent/control/metrics.js';
import { collectStatus, type AgentStatus } from '../../agent/control/status.js';
import type { WorkerStatus } from '../../agent/hosted-worker.js';
import { silentLogger } from '../../agent/log.js';
import { CommandCounters } from '../../agent/worker/stats.js';

const servers: MetricsServer[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

function worker(state: WorkerStatus['connection']['state'], sent: number, master = '127.0.0.1:9989'): WorkerStatus {
  return {
    name: 'w1',
    basedir: '/srv/w1',
    connection: { state, master, protocol: 'pb', connectedSince: null, lastError: null, connects: 3, reconnects: 2, failedAttempts: 4 },
    commands: {
      running: [],
      started: { shell: 5 },
      finished: { shell: { success: 4, failure: 1 } },
      outputSentBytes: sent,
      outputSpooledBytes: 10,
      outputDroppedBytes: 20,
    },
  };
}

function sample(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('metrics endpoint', () => {
  it('serves the snapshot values, fresh at each scrape, and the batch histogram', async () => {
    let current = worker('connected', 1000);
    const counters = new CommandCounters();
    const status = (): AgentStatus =>
      collectStatus({
        version: '1.2.3',
        startedAt: Date.now(),
        loop: { lastLagMs: 2, maxStallMs: 150, stalls: 1 },
        metricsUrl: () => null,
        draining: () => false,
        workers: () => [{ status: () => current }],
      });
    const m = await startMetrics(
      { host: '127.0.0.1', port: 0 },
      { status, batches: [{ worker: 'w1', master: () => '127.0.0.1:9989', onBatch: (l) => counters.onBatch(l) }] },
      silentLogger,
    );
    servers.push(m);
    expect(m.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    counters.batchSent(100);
    counters.batchSent(70_000);
    const res = await fetch(m.url);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE bbagent_commands_finished_total counter');
    expect(sample(text, 'bbagent_info{version="1.2.3"}')).toBe(1);
    expect(sample(text, 'bbagent_connection_up{worker="w1",master="127.0.0.1:9989",protocol="pb"}')).toBe(1);
    expect(sample(text, 'bbagent_connection_reconnects_total{worker="w1",master="127.0.0.1:9989"}')).toBe(2);
    expect(sample(text, 'bbagent_connection_failed_attempts_total{worker="w1",master="127.0.0.1:9989"}')).toBe(4);
    expect(sample(text, 'bbagent_commands_started_total{worker="w1",master="127.0.0.1:9989",command="shell"}')).toBe(5);
    expect(sample(text, 'bbagent_commands_finished_total{worker="w1",master="127.0.0.1:9989",command="shell",result="success"}')).toBe(4);
    expect(sample(text, 'bbagent_commands_finished_total{worker="w1",master="127.0.0.1:9989",command="shell",result="failure"}')).toBe(1);
    expect(sample(text, 'bbagent_output_sent_bytes_total{worker="w1",master="127.0.0.1:9989"}')).toBe(1000);
    expect(sample(text, 'bbagent_output_spooled_bytes_total{worker="w1",master="127.0.0.1:9989"}')).toBe(10);
    expect(sample(text, 'bbagent_output_dropped_bytes_total{worker="w1",master="127.0.0.1:9989"}')).toBe(20);
    expect(sample(text, 'bbagent_event_loop_max_stall_seconds')).toBe(0.15);
    expect(sample(text, 'bbagent_event_loop_stalls_total')).toBe(1);
    expect(sample(text, 'bbagent_output_batch_bytes_bucket{le="256",worker="w1",master="127.0.0.1:9989"}')).toBe(1);
    expect(sample(text, 'bbagent_output_batch_bytes_bucket{le="65536",worker="w1",master="127.0.0.1:9989"}')).toBe(1);
    expect(sample(text, 'bbagent_output_batch_bytes_bucket{le="262144",worker="w1",master="127.0.0.1:9989"}')).toBe(2);
    expect(sample(text, 'bbagent_output_batch_bytes_count{worker="w1",master="127.0.0.1:9989"}')).toBe(2);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    // the next scrape reads the snapshot afresh
    current = worker('waiting', 5000);
    const again = await (await fetch(m.url)).text();
    expect(sample(again, 'bbagent_connection_up{worker="w1",master="127.0.0.1:9989",protocol="pb"}')).toBe(0);
    expect(sample(again, 'bbagent_output_sent_bytes_total{worker="w1",master="127.0.0.1:9989"}')).toBe(5000);
  });

  it('keeps two same-named workers of one agent (two masters) apart by their master label', async () => {
    const [a, b] = [worker('connected', 100, 'ma.example:9989'), worker('waiting', 7, 'mb.example:9989')];
    const [ca, cb] = [new CommandCounters(), new CommandCounters()];
    const status = (): AgentStatus =>
      collectStatus({
        version: '1.2.3',
        startedAt: Date.now(),
        loop: { lastLagMs: 0, maxStallMs: 0, stalls: 0 },
        metricsUrl: () => null,
        draining: () => false,
        workers: () => [{ status: () => a }, { status: () => b }],
      });
    const batches = [
      { worker: 'w1', master: () => 'ma.example:9989', onBatch: ca.onBatch.bind(ca) },
      { worker: 'w1', master: () => 'mb.example:9989', onBatch: cb.onBatch.bind(cb) },
    ];
    const m = await startMetrics({ host: '127.0.0.1', port: 0 }, { status, batches }, silentLogger);
    servers.push(m);
    ca.batchSent(100);
    cb.batchSent(100);
    cb.batchSent(100);
    const text = await (await fetch(m.url)).text();
    expect(sample(text, 'bbagent_output_sent_bytes_total{worker="w1",master="ma.example:9989"}')).toBe(100);
    expect(sample(text, 'bbagent_output_sent_bytes_total{worker="w1",master="mb.example:9989"}')).toBe(7);
    expect(sample(text, 'bbagent_connection_up{worker="w1",master="ma.example:9989",protocol="pb"}')).toBe(1);
    expect(sample(text, 'bbagent_connection_up{worker="w1",master="mb.example:9989",protocol="pb"}')).toBe(0);
    expect(sample(text, 'bbagent_commands_started_total{worker="w1",master="mb.example:9989",command="shell"}')).toBe(5);
    expect(sample(text, 'bbagent_output_batch_bytes_count{worker="w1",master="ma.example:9989"}')).toBe(1);
    expect(sample(text, 'bbagent_output_batch_bytes_count{worker="w1",master="mb.example:9989"}')).toBe(2);
    // one sample per worker, none summed: each series appears once
    expect(text.split('\n').filter((l) => l.startsWith('bbagent_output_sent_bytes_total{'))).toHaveLength(2);
  });

  it('serves only GET /metrics', async () => {
    const m = await startMetrics({ host: '127.0.0.1', port: 0 }, { status: () => ({}) as AgentStatus, batches: [] }, silentLogger);
    servers.push(m);
    expect((await fetch(m.url.replace('/metrics', '/'))).status).toBe(404);
    expect((await fetch(m.url, { method: 'POST', body: 'x' })).status).toBe(404);
  });

  it('a port in use is E_METRICS naming the address', async () => {
    const m = await startMetrics({ host: '127.0.0.1', port: 0 }, { status: () => ({}) as AgentStatus, batches: [] }, silentLogger);
    servers.push(m);
    const port = Number(new URL(m.url).port);
    await expect(startMetrics({ host: '127.0.0.1', port }, { status: () => ({}) as AgentStatus, batches: [] }, silentLogger)).rejects.toMatchObject({
      code: 'E_METRICS',
      message: expect.stringContaining(`cannot listen on 127.0.0.1:${port}`),
    });
  });
});

describe('metricsAddr', () => {
  it('parses HOST:PORT and [IPv6]:PORT', () => {
    expect(parseMetricsAddr('127.0.0.1:9101')).toEqual({ host: '127.0.0.1', port: 9101 });
    expect(parseMetricsAddr('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseMetricsAddr('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    for (const bad of ['9101', '127.0.0.1', '127.0.0.1:99999', '::1:9101', '[nope]:1', 'http://127.0.0.1:9101', 'a b:1'])
      expect(parseMetricsAddr(bad)).toBeUndefined();
  });

  it('takes a loopback address only, unless metricsAllowRemote', () => {
    for (const h of ['127.0.0.1', '127.8.9.10', '::1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1']) expect(isLoopbackHost(h)).toBe(false);
    expect(metricsAddrFault({ metricsAddr: '0.0.0.0:9101', metricsAllowRemote: false })).toMatch(
      /not a loopback address: the metrics endpoint has no authentication/,
    );
    expect(metricsAddrFault({ metricsAddr: '0.0.0.0:9101', metricsAllowRemote: true })).toBeUndefined();
    expect(metricsAddrFault({ metricsAddr: null, metricsAllowRemote: false })).toBeUndefined();
  });

  it('the config refuses a remote address, naming the flag it came from', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-metrics-cfg-'));
    writeFileSync(path.join(dir, 'bbagent.json'), JSON.stringify({ masterHost: 'm', masterPort: 1, name: 'w', password: 'p' }));
    expect(() => loadConfig(dir, { metricsAddr: '0.0.0.0:9101' }, {})).toThrow(/^--metrics-addr: metricsAddr 0\.0\.0\.0:9101 is not a loopback address/);
    expect(loadConfig(dir, { metricsAddr: '0.0.0.0:9101', metricsAllowRemote: 'true' }, {}).metricsAddr).toBe('0.0.0.0:9101');
    expect(() => loadConfig(dir, { metricsAddr: 'nonsense' }, {})).toThrow(/metricsAddr must be HOST:PORT/);
  });
});
