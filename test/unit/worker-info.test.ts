// Worker info as sent to the master: the values buildbot-worker sends, with its types.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import { collectWorkerInfo } from '../../agent/worker/info.js';
import { silentLogger } from '../../agent/log.js';
import { currentPlatform } from '../../platforms/index.js';

const collect = (deleteLeftoverDirs: boolean) =>
  collectWorkerInfo({
    basedir: mkdtempSync(path.join(os.tmpdir(), 'bbagent-info-')),
    platform: currentPlatform(),
    commands: COMMAND_TABLE,
    environ: { PATH: '/usr/bin' },
    numcpus: 2,
    version: 'bbagent test',
    deleteLeftoverDirs,
    logger: silentLogger,
  });

describe('worker info', () => {
  it("delete_leftover_dirs is the integer 0/1, as buildbot-worker's create-worker writes it (Twisted flag)", async () => {
    expect((await collect(false))['delete_leftover_dirs']).toBe(0);
    expect((await collect(true))['delete_leftover_dirs']).toBe(1);
  });

  it('environ is the environment builds get, as given', async () => {
    expect((await collect(false))['environ']).toEqual({ PATH: '/usr/bin' });
  });
});
