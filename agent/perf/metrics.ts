// The metrics a replicate reports: `PERFMETRIC <name> <value> [unit]` lines on its stdout (one subtest each), or,
// when it prints none, its wall time in milliseconds (one subtest named after the suite).

import { AgentError } from '../errors.js';

export const WALL_TIME_UNIT = 'ms';

export interface MetricValue {
  name: string;
  value: number;
  unit: string | undefined;
}

/** Perfherder's limits on a subtest: name length and the value's range (±1e12). */
const MAX_METRIC_NAME = 80;
const MAX_UNIT = 20;
const MAX_VALUE = 1e12;

const LINE = /^PERFMETRIC(?:\s+(.*))?$/;

/** The PERFMETRIC lines of a replicate's output; `where` names the replicate in errors. */
export function parseMetricLines(output: string, where: string): MetricValue[] {
  const found: MetricValue[] = [];
  const seen = new Set<string>();
  output.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    const m = LINE.exec(line);
    if (!m) return;
    const fields = (m[1] ?? '').split(/\s+/).filter((f) => f !== '');
    const bad = (why: string): AgentError => new AgentError('E_PERF_METRIC', `${where}, output line ${i + 1}: '${line.slice(0, 120)}': ${why}`);
    if (fields.length < 2 || fields.length > 3) throw bad('expected PERFMETRIC <name> <value> [unit]');
    const [name, text, unit] = fields as [string, string, string | undefined];
    if (name.length > MAX_METRIC_NAME) throw bad(`the name is longer than ${MAX_METRIC_NAME} characters`);
    const value = Number(text);
    if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) || !Number.isFinite(value)) throw bad(`'${text}' is not a number`);
    if (Math.abs(value) > MAX_VALUE) throw bad(`${text} is outside Perfherder's range ±1e12`);
    if (unit !== undefined && unit.length > MAX_UNIT) throw bad(`the unit is longer than ${MAX_UNIT} characters`);
    if (seen.has(name)) throw bad(`metric '${name}' is reported twice`);
    seen.add(name);
    found.push({ name, value, unit });
  });
  return found;
}

/** Collects each metric's values across replicates; every replicate must report the same metrics. */
export class MetricSeries {
  private readonly order: string[] = [];
  private readonly values = new Map<string, number[]>();
  private readonly units = new Map<string, string | undefined>();
  private count = 0;

  add(metrics: readonly MetricValue[], where: string): void {
    const names = metrics.map((m) => m.name);
    if (this.count > 0) {
      const missing = this.order.filter((n) => !names.includes(n));
      const extra = names.filter((n) => !this.values.has(n));
      if (missing.length > 0 || extra.length > 0) {
        const parts = [missing.length ? `missing ${missing.join(', ')}` : '', extra.length ? `new ${extra.join(', ')}` : ''].filter(Boolean);
        throw new AgentError('E_PERF_METRIC', `${where} reports different metrics from the replicates before it: ${parts.join('; ')}`);
      }
    }
    for (const m of metrics) {
      if (this.count === 0) {
        this.order.push(m.name);
        this.values.set(m.name, []);
        this.units.set(m.name, m.unit);
      } else if (this.units.get(m.name) !== m.unit) {
        throw new AgentError('E_PERF_METRIC', `${where}: metric '${m.name}' changed its unit from '${this.units.get(m.name) ?? ''}' to '${m.unit ?? ''}'`);
      }
      this.values.get(m.name)!.push(m.value);
    }
    this.count++;
  }

  get replicates(): number {
    return this.count;
  }

  names(): string[] {
    return [...this.order];
  }

  series(name: string): number[] {
    return [...(this.values.get(name) ?? [])];
  }

  unit(name: string): string | undefined {
    return this.units.get(name);
  }
}
