// Talos's filters, as a spec string ('ignore_first:5,median'): zero or more series filters (ignore_first:N,
// ignore_max, ignore_min), applied left to right, then at most one summarizer (median, mean, geometric_mean),
// which must come last; without one the summary is the median. Talos's geometric_mean is exp(mean(log(x + 1))) − 1
// (so a 0 does not zero the result), which we keep for parity with its numbers.

import { AgentError } from '../errors.js';
import { mean, median } from './stats.js';

export type SeriesFilter = { kind: 'ignore_first'; count: number } | { kind: 'ignore_max' } | { kind: 'ignore_min' };
export type Summarizer = 'median' | 'mean' | 'geometric_mean';

export interface FilterSpec {
  /** The spec as given, normalised (no spaces), for the artifacts. */
  text: string;
  filters: SeriesFilter[];
  summarizer: Summarizer;
}

export const DEFAULT_FILTER = 'median';

const SUMMARIZERS: readonly Summarizer[] = ['median', 'mean', 'geometric_mean'];

/** Parses a filter spec; every mistake names the item and what was expected. */
export function parseFilterSpec(spec: string): FilterSpec {
  const items = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw filterError(spec, 'it is empty (e.g. ignore_first:5,median)');
  const filters: SeriesFilter[] = [];
  let summarizer: Summarizer | undefined;
  for (const item of items) {
    if (summarizer !== undefined) throw filterError(spec, `'${item}' follows the summarizer '${summarizer}', which must come last`);
    const [name = '', arg, ...rest] = item.split(':');
    if (rest.length > 0) throw filterError(spec, `'${item}' has more than one ':'`);
    if ((SUMMARIZERS as readonly string[]).includes(name)) {
      if (arg !== undefined) throw filterError(spec, `'${name}' takes no argument`);
      summarizer = name as Summarizer;
    } else if (name === 'ignore_max' || name === 'ignore_min') {
      if (arg !== undefined) throw filterError(spec, `'${name}' takes no argument (it drops one value)`);
      filters.push({ kind: name });
    } else if (name === 'ignore_first') {
      if (arg === undefined || !/^\d+$/.test(arg)) throw filterError(spec, `'${item}' needs a count: ignore_first:N with N an integer >= 0`);
      filters.push({ kind: 'ignore_first', count: Number(arg) });
    } else {
      throw filterError(spec, `unknown filter '${name}' (known: ignore_first:N, ignore_max, ignore_min, ${SUMMARIZERS.join(', ')})`);
    }
  }
  return { text: items.join(','), filters, summarizer: summarizer ?? 'median' };
}

function filterError(spec: string, why: string): AgentError {
  return new AgentError('E_PERF_FILTER', `filter spec '${spec}': ${why}`);
}

/** The series left after the series filters, with the replicate index each value came from. */
export interface FilteredSeries {
  values: number[];
  indices: number[];
}

export function applySeriesFilters(values: readonly number[], filters: readonly SeriesFilter[]): FilteredSeries {
  let kept = values.map((v, i) => ({ v, i }));
  for (const f of filters) {
    if (f.kind === 'ignore_first') kept = kept.slice(f.count);
    else if (kept.length > 0) {
      // Talos drops one occurrence of the extreme value: the first one found.
      const extreme = f.kind === 'ignore_max' ? Math.max(...kept.map((k) => k.v)) : Math.min(...kept.map((k) => k.v));
      const at = kept.findIndex((k) => k.v === extreme);
      kept = kept.filter((_, j) => j !== at);
    }
  }
  return { values: kept.map((k) => k.v), indices: kept.map((k) => k.i) };
}

/** Talos's geometric_mean filter: exp(mean(log(x + 1))) − 1. */
export function talosGeometricMean(values: readonly number[]): number {
  return Math.exp(mean(values.map((v) => Math.log(v + 1)))) - 1;
}

export function summarize(values: readonly number[], summarizer: Summarizer): number {
  if (summarizer === 'mean') return mean(values);
  if (summarizer === 'geometric_mean') return talosGeometricMean(values);
  return median(values);
}

/** The filters' series and its summary value; throws when the filters leave nothing (e.g. ignore_first:5 of 5). */
export function applyFilterSpec(values: readonly number[], spec: FilterSpec): FilteredSeries & { value: number } {
  const series = applySeriesFilters(values, spec.filters);
  if (series.values.length === 0) {
    throw new AgentError('E_PERF_FILTER', `filter spec '${spec.text}' leaves no value of ${values.length} replicate(s): run more replicates or ignore fewer`);
  }
  return { ...series, value: summarize(series.values, spec.summarizer) };
}

/** How many values the series filters drop from a series of `n` (for the replicate count needed). */
export function droppedBy(filters: readonly SeriesFilter[], n: number): number {
  let left = n;
  for (const f of filters) left = f.kind === 'ignore_first' ? Math.max(0, left - f.count) : Math.max(0, left - 1);
  return n - left;
}
