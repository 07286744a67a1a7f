// Reads a plain tar stream with node-tar's Parser (ustar, GNU long names, PAX headers) and hands each member to
// the TreeWriter, one at a time. node-tar's own Unpack is not used: it strips `/` and `..` with a warning where we
// refuse the whole archive, and the tar and zip readers must share one set of rules (extract-writer.ts).
//
// The parser runs in strict mode: a bad header checksum or a truncated archive is an error, not a warning.

import { once } from 'node:events';
import { Parser, type ReadEntry } from 'tar';
import { AgentError, errorMessage } from '../errors.js';
import type { TreeWriter } from './extract-writer.js';

/** Member types that carry a regular file's data. */
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
/** Not created, counted as skipped (see TreeWriter.skip). */
const SKIPPED_TYPES = new Map([
  ['CharacterDevice', 'a character device'],
  ['BlockDevice', 'a block device'],
  ['FIFO', 'a FIFO'],
]);

function memberMeta(entry: ReadEntry): { name: string; mode?: number; mtime?: Date } {
  return {
    name: entry.path,
    ...(entry.mode !== undefined ? { mode: entry.mode } : {}),
    ...(entry.mtime ? { mtime: entry.mtime } : {}),
  };
}

/** Hands one member to the writer; its data (if any) is read from `entry`. */
async function writeMember(entry: ReadEntry, w: TreeWriter): Promise<void> {
  const meta = memberMeta(entry);
  if (FILE_TYPES.has(entry.type)) return w.file(meta, entry.size, entry as AsyncIterable<Buffer>);
  entry.resume();
  switch (entry.type) {
    case 'Directory':
    case 'GNUDumpDir':
      return w.dir(meta);
    case 'SymbolicLink':
      return w.symlink(meta, entry.linkpath ?? '');
    case 'Link':
      return w.hardlink(meta, entry.linkpath ?? '');
  }
  const skipped = SKIPPED_TYPES.get(entry.type);
  if (skipped) return w.skip(entry.path, skipped);
  throw w.refuse(entry.path, `unsupported tar member type '${entry.type}'`, 'E_EXTRACT_UNSUPPORTED');
}

/** Extracts the tar stream `plain` through `w`; resolves when every member is written. */
export async function extractTarStream(plain: AsyncIterable<Buffer>, w: TreeWriter, archive: string): Promise<void> {
  const parser = new Parser({ strict: true, zstd: false, brotli: false });
  let failure: unknown = null;
  let rejectFailed: (err: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (rejectFailed = reject));
  failed.catch(() => {}); // observed through Promise.race below
  // the member being written: destroyed on a failure, so a writer waiting for its data stops
  let current: ReadEntry | null = null;
  const fail = (err: unknown): void => {
    if (failure !== null) return;
    failure = err;
    rejectFailed(err);
    current?.destroy();
  };
  let work: Promise<void> = Promise.resolve();
  parser.on('entry', (entry: ReadEntry) => {
    work = work.then(async () => {
      if (failure !== null) return void entry.resume();
      current = entry;
      try {
        await writeMember(entry, w);
      } catch (err) {
        fail(err);
      } finally {
        current = null;
      }
    });
  });
  // entries node-tar cannot use (sparse files, multi-volume parts, oversized PAX headers) would extract wrongly
  parser.on('ignoredEntry', (entry: ReadEntry) => fail(w.refuse(entry.path, `unsupported tar member type '${entry.type}'`, 'E_EXTRACT_UNSUPPORTED')));
  parser.on('error', (err: Error) => fail(new AgentError('E_EXTRACT_CORRUPT', `${archive}: corrupt or truncated tar data: ${err.message}`)));
  const ended = once(parser, 'end');
  ended.catch(() => {});
  try {
    for await (const chunk of plain) {
      if (failure !== null) break;
      if (!parser.write(chunk)) await Promise.race([once(parser, 'drain'), failed]);
    }
    if (failure === null) {
      parser.end();
      await Promise.race([ended, failed]);
    }
  } catch (err) {
    fail(err instanceof AgentError ? err : new AgentError('E_EXTRACT_CORRUPT', `${archive}: corrupt or truncated data: ${errorMessage(err)}`));
  }
  await work;
  if (failure !== null) throw failure;
}
