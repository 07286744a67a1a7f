// The sweep the next fetch to a destination runs (fetch-sweep.ts): the partial files, archive copies and temp
// trees a killed fetch left beside that destination go, those of a fetch still running stay, and nothing else
// is touched (other destinations, look-alike names).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sweepFetchLeftovers } from '../../agent/artifacts/fetch-sweep.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('sweepFetchLeftovers', () => {
  it('removes the leftovers of dead processes beside the destination, and only those', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fetch-sweep-'));
    dirs.push(dir);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const live = process.pid;
    const gone = [
      `app.bin.partial-${dead}-0123456789ab`,
      `app.bin.copy-${dead}-0123456789ab`,
      `tree.fetch-${dead}-0123456789ab`,
      `tree.fetch-${dead}-0123456789ab.partial-${dead}-ba9876543210`,
      `tree.extracting-${dead}-0123456789ab`,
      `tree.extracting-${dead}-0123456789ab-old`,
    ];
    const kept = [
      'app.bin',
      `app.bin.partial-${live}-0123456789ab`, // a fetch of this process, running
      `tree.fetch-${live}-0123456789ab.partial-${dead}-ba9876543210`, // any live pid in the chain keeps it
      `other.bin.partial-${dead}-0123456789ab`, // another destination
      `app.bin.partial-0123456789ab`, // not a name fetch gives
      `app.bin.backup`,
    ];
    for (const name of [...gone, ...kept]) {
      if (name.includes('extracting')) mkdirSync(path.join(dir, name, 'sub'), { recursive: true });
      else writeFileSync(path.join(dir, name), 'x');
    }
    const log = new RecordingLogger();
    const removed = [...(await sweepFetchLeftovers(path.join(dir, 'app.bin'), log)), ...(await sweepFetchLeftovers(path.join(dir, 'tree'), log))];
    expect(removed.map((p) => path.basename(p)).sort()).toEqual([...gone].sort());
    expect(readdirSync(dir).sort()).toEqual([...kept].sort());
    expect(log.lines.filter((l) => l.includes('left by a fetch that did not finish'))).toHaveLength(gone.length);
    // a destination in a directory that does not exist: nothing to do
    expect(await sweepFetchLeftovers(path.join(dir, 'no', 'such'), log)).toEqual([]);
  });
});
