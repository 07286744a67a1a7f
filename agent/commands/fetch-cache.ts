// The agent's one artifact cache, behind the ArtifactCacheProvider every command env carries: all workers and all
// steps of an agent process share it, so that concurrent fetches of one file make one request and the cache's
// process lock (one agent per cache directory) is taken once. The composition root (agent/agent.ts) makes it and
// starts opening it at start-up (the open sweeps what a killed agent left); a cache that cannot be opened (another
// process holds it) fails the fetches that need it, with the reason, and is tried again by the next one.

import { readdirSync } from 'node:fs';
import type { ArtifactCache, CacheOptions } from '../artifacts/cache.js';
import { HASH_ALGORITHMS, LOCK_FILE, TMP_DIR } from '../artifacts/cache-key.js';
import { LOCK_TEMP, TAKEOVER_SUFFIX } from '../artifacts/cache-lock.js';
import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ArtifactCacheProvider } from './types.js';

export class SharedArtifactCache implements ArtifactCacheProvider {
  private opening: Promise<ArtifactCache> | undefined;
  private closed = false;

  constructor(
    readonly root: string,
    private readonly logger: Logger,
    private readonly options: Omit<CacheOptions, 'root' | 'logger'> = {},
  ) {}

  get(): Promise<ArtifactCache> {
    if (this.closed) return Promise.reject(new AgentError('E_CACHE_CLOSED', `cache '${this.root}' is closed: the agent is stopping`));
    if (this.opening === undefined) {
      const opening = (async () => {
        refuseForeignDirectory(this.root);
        // the cache's code (index, eviction, sweep, verification) loads with the first open
        const { ArtifactCache } = await import('../artifacts/cache.js');
        return ArtifactCache.open({ root: this.root, logger: this.logger, ...this.options });
      })();
      this.opening = opening;
      opening.catch(() => {
        if (this.opening === opening) this.opening = undefined; // the next fetch tries again
      });
    }
    return this.opening;
  }

  /** Opens the cache now (its sweep runs at start-up); a failure is logged, and fetches report it. */
  openAtStart(): void {
    this.get().then(
      (c) => this.logger.info(`artifact cache in ${c.root}: ${c.entries().length} entries`),
      (err: unknown) => this.logger.warn(`artifact cache in ${this.root} cannot be opened (fetch steps will fail until it can): ${errorMessage(err)}`),
    );
  }

  /** Releases the cache's lock; later gets fail with E_CACHE_CLOSED. */
  async close(): Promise<void> {
    this.closed = true;
    const cache = await this.opening?.catch(() => undefined);
    await cache?.close();
  }
}

/**
 * Throws E_CACHE_FOREIGN when `root` exists, is not empty and holds none of the names a cache writes: the cache's
 * start-up sweep removes every name it does not know, so a cacheDir set to a directory in use (a home, a worker's
 * basedir) would be emptied.
 */
export function refuseForeignDirectory(root: string): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return; // missing (the cache creates it) or unreadable (the open reports it)
  }
  // a crash can leave only a lock's temp file or takeover guard (cache-lock.ts): ours too, and the sweep removes it
  const own = new Set<string>([LOCK_FILE, LOCK_FILE + TAKEOVER_SUFFIX, TMP_DIR, ...HASH_ALGORITHMS]);
  if (names.length === 0 || names.some((n) => own.has(n) || LOCK_TEMP.test(n))) return;
  const shown = names.slice(0, 3).join(', ') + (names.length > 3 ? ', ...' : '');
  throw new AgentError(
    'E_CACHE_FOREIGN',
    `cache directory '${root}' holds files no cache wrote (${shown}); its start-up sweep would delete them: give cacheDir an empty or new directory`,
  );
}
