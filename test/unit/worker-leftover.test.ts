// setBuilderList with deleteLeftoverDirs: builder directories no longer wanted go, the agent's own
// directories (agent/layout.ts) never do.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import { Worker } from '../../agent/worker/worker.js';
import { AGENT_OWNED_DIRS } from '../../agent/layout.js';
import { silentLogger } from '../../agent/log.js';
import { currentPlatform } from '../../platforms/index.js';

describe('setBuilderList', () => {
  it('deletes leftover builder directories but none of the agent-owned ones', () => {
    const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-worker-'));
    for (const d of [...AGENT_OWNED_DIRS, 'old-builder']) {
      mkdirSync(path.join(basedir, d));
      writeFileSync(path.join(basedir, d, 'f'), 'x');
    }
    const worker = new Worker({
      env: { basedir, platform: currentPlatform(), logger: silentLogger, environ: {}, now: () => 0 },
      commands: COMMAND_TABLE,
      collectInfo: async () => ({}),
      logger: silentLogger,
      onShutdownRequest: () => {},
      deleteLeftoverDirs: true,
    });
    expect(worker.setBuilderList([['b1', 'b1-dir']])).toEqual(['b1']);
    expect(existsSync(path.join(basedir, 'old-builder'))).toBe(false);
    expect(existsSync(path.join(basedir, 'b1-dir'))).toBe(true);
    for (const d of AGENT_OWNED_DIRS) expect(existsSync(path.join(basedir, d, 'f')), d).toBe(true);
  });
});
