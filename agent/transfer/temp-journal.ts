// A journal of the temporary files the agent is writing (downloads land in a temp file beside their
// destination, then a rename): each temp path is recorded under BASEDIR/.bbagent before the file is created
// and forgotten once it was renamed or removed, so a start after a kill -9 removes what was left behind.

import { randomBytes } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { errorMessage } from '../errors.js';
import { BASEDIR_LAYOUT } from '../layout.js';
import type { Logger } from '../log.js';
import { makedirs } from '../fs/makedirs.js';
import { fsPath } from '../py/fsencoding.js';

/** Where in BASEDIR/.bbagent the entries live. */
const JOURNAL_DIR = 'temp-files';
/** The only names a sweep ever removes: what tempPathBeside() makes. */
const TEMP_NAME = /^\.bbagent-tmp-[0-9a-f]{16}$/;
const ENTRY_NAME = /^[0-9a-f]{16}\.json$/;

/** The journal directory of a base directory. */
export function journalDir(basedir: string): string {
  return nodePath.join(basedir, BASEDIR_LAYOUT.state, JOURNAL_DIR);
}

/** A fresh temporary path in `dir` (same file system as the destination, so a rename can replace it). */
export function tempPathBeside(dir: string): string {
  return nodePath.join(dir, `.bbagent-tmp-${randomBytes(8).toString('hex')}`);
}

/** One recorded temp file: `forget()` once it is gone or renamed. */
export interface JournalEntry {
  forget(): Promise<void>;
}

export class TempFileJournal {
  constructor(
    private readonly basedir: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Records `tempPath` before the caller creates it. A journal that cannot be written is logged and the
   * transfer goes on: only the clean-up after a crash is lost, never the download.
   */
  async record(tempPath: string): Promise<JournalEntry> {
    const dir = journalDir(this.basedir);
    const entry = nodePath.join(dir, `${randomBytes(8).toString('hex')}.json`);
    try {
      makedirs(dir, { existOk: true });
      await writeFile(entry, `${JSON.stringify({ temp: nodePath.resolve(tempPath) })}\n`, { flag: 'wx' });
    } catch (err) {
      this.logger.warn(`cannot record temporary file ${tempPath} in ${dir} (it would stay behind after a crash): ${errorMessage(err)}`);
      return { forget: async () => undefined };
    }
    return {
      forget: async () => {
        await unlink(entry).catch((err: unknown) => this.logger.warn(`cannot remove journal entry ${entry}: ${errorMessage(err)}`));
      },
    };
  }
}

/**
 * At start-up, before any command runs: removes the temp files a previous run recorded and never finished
 * (killed mid-download), then their entries. Only names of the agent's own pattern are removed. Never throws.
 */
export function sweepTempFiles(basedir: string, logger: Logger): number {
  const dir = journalDir(basedir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0; // no journal yet
  }
  let removed = 0;
  for (const name of names) {
    if (!ENTRY_NAME.test(name)) continue;
    const entry = nodePath.join(dir, name);
    try {
      // only a regular file is read (a FIFO put there would hold the start for ever)
      if (!lstatSync(entry).isFile()) continue;
      const temp = parseEntry(readFileSync(entry, 'utf8'));
      if (temp !== null && TEMP_NAME.test(nodePath.basename(temp))) {
        try {
          if (lstatSync(fsPath(temp)).isFile()) {
            unlinkSync(fsPath(temp));
            removed++;
            logger.info(`removed ${temp}, left behind by an interrupted download`);
          }
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      unlinkSync(entry);
    } catch (err) {
      logger.warn(`cannot clean up after journal entry ${entry}: ${errorMessage(err)}`);
    }
  }
  return removed;
}

function parseEntry(text: string): string | null {
  try {
    const v = JSON.parse(text) as { temp?: unknown };
    return typeof v.temp === 'string' && nodePath.isAbsolute(v.temp) ? v.temp : null;
  } catch {
    return null; // a torn entry (killed while writing it): its temp file was never created
  }
}
