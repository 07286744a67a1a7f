// Timers for delays that come from outside the agent (the master's timeout, maxTime, sigtermTime and
// buffer_timeout): Node fires a timer of 2^31 ms (~24.8 days) or more after 1 ms instead (TimeoutOverflowWarning),
// so a long delay is chained here through shorter timers. Every such delay goes through this module, and so does
// every bounded wait of the agent for a promise (settleWithin). platforms/ keeps its own small `within`
// (platforms/posix/processes.ts): it may not import the agent.

import { errorMessage } from './errors.js';

/** The longest delay one Node timer can take (ms); anything longer would fire at once. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export interface DelayTimer {
  /** Starts the whole delay again from now (a step's `timeout` counts from the last output). */
  refresh(): void;
  cancel(): void;
}

export interface DelayOptions {
  /** Monotonic clock in ms (injectable for tests). */
  now?: () => number;
  /** The longest single Node timer (tests use a small one to exercise the chaining). */
  maxChunkMs?: number;
  /** Do not keep the process alive for this timer. */
  unref?: boolean;
}

/**
 * Calls `cb` once, `ms` after now (or after the last refresh). `ms` must be a number >= 0; Infinity never fires.
 * Throws RangeError for NaN or a negative delay: callers validate what the master sent before they get here.
 */
export function startDelay(cb: () => void, ms: number, opts: DelayOptions = {}): DelayTimer {
  if (typeof ms !== 'number' || Number.isNaN(ms) || ms < 0) throw new RangeError(`timer delay must be a number of ms >= 0, got ${String(ms)}`);
  const now = opts.now ?? (() => performance.now());
  const chunk = Math.min(opts.maxChunkMs ?? MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS);
  let deadline = now() + ms;
  let handle: NodeJS.Timeout | undefined;
  /** The pending timer ends the delay (rather than being one link of the chain). */
  let final = false;
  let handleDelay = 0;
  let cancelled = false;

  /** Arms the next timer of the chain, `left` ms from now (the caller read the clock once). */
  const arm = (left: number): void => {
    if (cancelled || !Number.isFinite(deadline)) return;
    final = left <= chunk;
    handleDelay = final ? left : chunk;
    handle = setTimeout(fire, handleDelay);
    if (opts.unref) handle.unref();
  };
  const fire = (): void => {
    handle = undefined;
    if (cancelled) return;
    if (final) {
      cancelled = true;
      cb();
    } else arm(Math.max(0, deadline - now())); // one link of a long chain: go on from the deadline, which refresh() may have moved
  };
  arm(ms);

  return {
    refresh() {
      if (cancelled) return;
      deadline = now() + ms;
      if (handle === undefined) return arm(ms);
      if (!final) return; // the chain re-reads the deadline at its next link
      if (handleDelay === ms) return void handle.refresh(); // the hot path (every output chunk): restart as it was
      clearTimeout(handle);
      arm(ms);
    },
    cancel() {
      cancelled = true;
      if (handle !== undefined) clearTimeout(handle);
      handle = undefined;
    },
  };
}

/** How a bounded wait ended: the promise's value, or why there is none. */
export type Settled<T> = { ok: true; value: T } | { ok: false; why: string };

/**
 * Waits for `p` at most `ms` and no longer than `signal` stays unaborted; never rejects. The operation itself
 * goes on in the background (the caller stops it, if it can). `why` is "not done within N s", "aborted", or the
 * rejection's message.
 */
export function settleWithin<T>(p: Promise<T>, ms: number, signal?: AbortSignal): Promise<Settled<T>> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve({ ok: false, why: 'aborted' });
    const done = (r: Settled<T>): void => {
      timer.cancel();
      signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const onAbort = (): void => done({ ok: false, why: 'aborted' });
    const timer = startDelay(() => done({ ok: false, why: `not done within ${ms / 1000} s` }), ms > 0 ? ms : 0);
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (value) => done({ ok: true, value }),
      (err: unknown) => done({ ok: false, why: errorMessage(err) }),
    );
  });
}

/** `p`'s value, or `fallback` when it rejects, takes longer than `ms`, or `signal` aborts first. */
export async function valueWithin<T>(p: Promise<T>, ms: number, fallback: T, signal?: AbortSignal): Promise<T> {
  const r = await settleWithin(p, ms, signal);
  return r.ok ? r.value : fallback;
}
