// What bbagent keeps in BASEDIR besides builder directories. No builder owns these: `deleteLeftoverDirs`
// (setBuilderList) leaves them alone, and the agent recreates one when something removed it.

export const BASEDIR_LAYOUT = {
  /** Worker info files sent to the master (admin, host, ...), as buildbot-worker's info/. */
  info: 'info',
  /** Full logs of over-budget steps (agent/output/spool.ts). */
  spool: 'spool',
  /** The agent's own bookkeeping (journals of files being written, so a start-up sweep can remove leftovers). */
  state: '.bbagent',
  /** The artifact cache of fetch (agent/artifacts/cache.ts): downloaded builds and their extracted trees. */
  cache: 'cache',
  /** What suite runs keep between builds: per-test durations for chunking (agent/commands/suite-args.ts). */
  suites: 'suites',
} as const;

/** Directory names in BASEDIR that belong to the agent, never to a builder. */
export const AGENT_OWNED_DIRS: readonly string[] = Object.values(BASEDIR_LAYOUT);
