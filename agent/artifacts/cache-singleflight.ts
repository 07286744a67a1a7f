// One call in flight per key: concurrent callers for a key share the first caller's promise (its result or its
// error), and the key is free again as soon as it settles, so a failure is not cached and the next call tries
// again (one try per wave of callers, not one per caller: no retry storm).

export class Singleflight<T> {
  private readonly flights = new Map<string, Promise<T>>();

  /** Runs `fn` unless a call for `key` is in flight, in which case its promise is returned. */
  do(key: string, fn: () => Promise<T>): { promise: Promise<T>; shared: boolean } {
    const running = this.flights.get(key);
    if (running) return { promise: running, shared: true };
    // fn starts in a microtask, after the key is registered, so even a synchronous throw frees the key.
    const promise: Promise<T> = Promise.resolve()
      .then(fn)
      .finally(() => {
        if (this.flights.get(key) === promise) this.flights.delete(key);
      });
    this.flights.set(key, promise);
    return { promise, shared: false };
  }

  has(key: string): boolean {
    return this.flights.has(key);
  }
}
