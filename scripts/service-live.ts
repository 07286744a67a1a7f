// scripts/service-live-test: `bbagent service` against a live systemd (a systemd-nspawn container) and a real
// Buildbot master, one PASS/FAIL line per check (scripts/harness/service-live-checks.ts); exits 1 on a failure,
// 2 when this host cannot boot systemd in a container.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './harness/bbagent-worker.js';
import { EnvironmentError, checkLine, runServiceLive, type LiveCheck } from './harness/service-live-checks.js';

const USAGE = `Usage: scripts/service-live-test [--keep] [--binary PATH] [--no-build]

Boots a Debian bookworm container with systemd as PID 1 (systemd-nspawn; the tree is debootstrap'd once into
build/cache/service-live), installs the linux-x64 single executable there as a systemd service with
'bbagent service install', attaches it to a Buildbot master on this host and checks status, stop, start,
restart after kill -9, reboot, power cut, idempotent and forced install, and uninstall. Needs root.

Options:
  --binary PATH   the executable to test (default dist/bbagent-linux-x64)
  --no-build      do not rebuild the executable when it is missing or older than the sources
  --keep          keep the scratch directory (container tree, master dir, console log)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { keep: { type: 'boolean' }, binary: { type: 'string' }, 'no-build': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const started = Date.now();
  // Ctrl-C: the running check ends, the container and the master are stopped, the scratch directory removed.
  // A second one exits at once; 'exit' hooks then SIGKILL the container (harness/container.ts) and the master.
  const interrupt = new AbortController();
  const onSignal = (): void => {
    if (interrupt.signal.aborted) process.exit(130);
    console.log('== interrupted: stopping (again to exit at once)');
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let results: LiveCheck[];
  try {
    results = await runServiceLive({
      binary: path.resolve(values.binary ?? path.join(REPO_ROOT, 'dist', 'bbagent-linux-x64')),
      cacheDir: path.join(REPO_ROOT, 'build', 'cache', 'service-live'),
      keep: values.keep === true,
      say: (s) => console.log(`== ${s}`),
      report: (c) => console.log(checkLine(c)),
      signal: interrupt.signal,
    });
  } catch (err) {
    if (err instanceof EnvironmentError) {
      console.log(`SKIP this host cannot boot systemd in a container: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const count = (status: LiveCheck['status']): number => results.filter((c) => c.status === status).length;
  const failed = count('fail');
  const known = count('xfail') + count('xpass') > 0 ? `, ${count('xfail')} known bugs (xfail), ${count('xpass')} fixed (xpass)` : '';
  console.log(`service-live: ${count('pass')} passed, ${failed} failed${known} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return interrupt.signal.aborted ? 130 : failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
