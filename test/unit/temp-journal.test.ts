// Checks the journal of temp files: an entry exists from before the temp file is created until it is gone, and
// the start-up sweep removes what a killed agent left (only files of the agent's own naming), never throwing.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TempFileJournal, journalDir, sweepTempFiles, tempPathBeside } from '../../agent/transfer/temp-journal.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'temp-journal-'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('temp file journal', () => {
  it('records before the file exists, forgets after; the sweep removes what a killed run left', async () => {
    const basedir = join(tmp, 'base1');
    const dest = join(tmp, 'dest1');
    mkdirSync(dest, { recursive: true });
    const logger = new RecordingLogger();
    const journal = new TempFileJournal(basedir, logger);

    // a finished download: nothing left in the journal
    const done = tempPathBeside(dest);
    const e1 = await journal.record(done);
    expect(readdirSync(journalDir(basedir))).toHaveLength(1);
    await e1.forget();
    expect(readdirSync(journalDir(basedir))).toEqual([]);

    // a download killed midway: its temp file and entry stay until the next start
    const killed = tempPathBeside(dest);
    await journal.record(killed);
    writeFileSync(killed, 'partial');
    // recorded, but killed before it created its file
    await journal.record(tempPathBeside(dest));
    // an entry torn by the kill, and files the sweep must not touch
    writeFileSync(join(journalDir(basedir), '0123456789abcdef.json'), '{"temp": "/tm');
    writeFileSync(join(journalDir(basedir), 'fedcba9876543210.json'), JSON.stringify({ temp: join(dest, 'precious.txt') }));
    writeFileSync(join(dest, 'precious.txt'), 'keep me');
    writeFileSync(join(journalDir(basedir), 'notes.txt'), 'not an entry');

    expect(sweepTempFiles(basedir, logger)).toBe(1);
    expect(existsSync(killed)).toBe(false);
    expect(readdirSync(dest)).toEqual(['precious.txt']);
    expect(readdirSync(journalDir(basedir))).toEqual(['notes.txt']);
    expect(logger.lines.filter((l) => l.startsWith('info'))).toEqual([`info removed ${killed}, left behind by an interrupted download`]);
  });

  it('a base directory without a journal is fine; an unwritable journal is logged and the transfer goes on', async () => {
    const logger = new RecordingLogger();
    expect(sweepTempFiles(join(tmp, 'never-used'), logger)).toBe(0);
    const file = join(tmp, 'a-file');
    writeFileSync(file, '');
    // BASEDIR/.bbagent cannot be made under a file
    const entry = await new TempFileJournal(file, logger).record(tempPathBeside(tmp));
    await entry.forget();
    expect(logger.lines).toEqual([
      expect.stringMatching(/^warn cannot record temporary file .* \(it would stay behind after a crash\): \[Errno 20\] Not a directory/),
    ]);
  });
});
