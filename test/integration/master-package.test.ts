// The master-side package (master/, bbagent_buildbot) is pip-installable into the master's Python: a venv of
// Debian's Python 3 with its system site-packages (where Debian's Buildbot 3.7 lives), `pip install` with no
// network (no dependencies, no build isolation: setuptools comes from the system), and FetchBuild imports from the
// installed copy.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/harness/bbagent-worker.js';

const DEBIAN_PYTHON = '/usr/bin/python3';

describe('the master package', () => {
  it('installs with pip into a venv of Debian Python without network, and FetchBuild imports from it', () => {
    const venv = mkdtempSync(path.join(os.tmpdir(), 'bbagent-venv-'));
    try {
      const run = (cmd: string, args: string[], cwd?: string): string => {
        const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, PIP_NO_INDEX: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
        expect(r.status, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0);
        return r.stdout;
      };
      run(DEBIAN_PYTHON, ['-m', 'venv', '--system-site-packages', venv]);
      // a copy: pip builds in the source tree (build/, *.egg-info) and must not write into the repository
      const src = path.join(venv, 'src');
      execFileSync('cp', ['-a', path.join(REPO_ROOT, 'master'), src]);
      run(path.join(venv, 'bin', 'pip'), ['install', '--no-deps', '--no-build-isolation', src]);
      const out = run(path.join(venv, 'bin', 'python'), [
        '-c',
        'import bbagent_buildbot.fetch as f, bbagent_buildbot, os; print(f.FetchBuild.__name__, bbagent_buildbot.__version__, os.path.dirname(f.__file__))',
      ]);
      const [name, version, where] = out.trim().split(' ');
      expect(name).toBe('FetchBuild');
      expect(version).toBe('0.1.0');
      expect(where?.startsWith(path.join(venv, 'lib'))).toBe(true); // the installed copy, not the source
    } finally {
      rmSync(venv, { recursive: true, force: true });
    }
  });
});
