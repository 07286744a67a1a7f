// `bbagent service` for real on Linux: the linux-x64 single executable installed as a systemd service in a
// systemd-nspawn container (systemd as PID 1) and attached to a real Buildbot master; install, status, a stop that
// lets a running build finish, a stop that kills a never-ending build at --stop-timeout, 'bbagent stop' leaving
// the unit stopped, start, restart after kill -9, reboot, power cut, idempotent and forced install, uninstall
// (scripts/harness/service-live-checks.ts; scripts/service-live-test runs the same checks with one line each).
// Needs root; installs systemd-container and debootstrap with apt-get and debootstraps Debian bookworm once into
// build/cache/service-live (~35 s); the checks take 45-85 s. Skipped, with the reason, when this host cannot boot
// systemd in a container.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/harness/bbagent-worker.js';
import { containerUnsupported } from '../../scripts/harness/container.js';
import { EnvironmentError, checkLine, runServiceLive, type LiveCheck } from '../../scripts/harness/service-live-checks.js';

const BINARY = path.join(REPO_ROOT, 'dist', 'bbagent-linux-x64');

function skipReason(): string | undefined {
  if (`${process.platform}-${process.arch}` !== 'linux-x64') return `the host is ${process.platform}-${process.arch}, not linux-x64`;
  if (!existsSync(BINARY)) return `${BINARY} is absent (run scripts/release/build-binaries --target linux-x64)`;
  return containerUnsupported();
}

const skip = skipReason();

describe('bbagent service against a live systemd (systemd-nspawn container)', () => {
  it.skipIf(skip !== undefined)(
    `install, status, stop drains a build, stop timeout, bbagent stop stays stopped, start, kill -9, reboot, power cut, reinstall, uninstall${skip ? ` (skipped: ${skip})` : ''}`,
    async (ctx) => {
      // One block in the test output (vitest heads every console.log with the test's name).
      const lines: string[] = [];
      let results: LiveCheck[];
      try {
        results = await runServiceLive({
          binary: BINARY,
          cacheDir: path.join(REPO_ROOT, 'build', 'cache', 'service-live'),
          say: (line) => lines.push(`== ${line}`),
          report: (c) => lines.push(checkLine(c)),
        });
      } catch (err) {
        if (err instanceof EnvironmentError) {
          const why = `this host cannot boot systemd in a container: ${err.message}`;
          lines.push(`SKIP ${why}`);
          ctx.skip(why);
        }
        throw err;
      } finally {
        console.log(`service-live:\n${lines.join('\n')}`);
      }
      expect(results.filter((c) => !c.ok).map(checkLine)).toEqual([]);
      expect(results.length).toBeGreaterThan(15);
    },
    600_000,
  );
});
