// One running command's link to the master over PB: the CommandChannel a command reports through, talking to the
// master's RemoteCommand / FileWriter / FileReader references, which it releases when the command is done.

import type { CommandChannel, CommandFailure, RemoteReader, RemoteWriter } from '../../commands/types.js';
import type { UpdateItem } from '../../output/types.js';
import { AgentError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { PyFloat, PyTuple } from '../../py/values.js';
import { ConnectionLostError } from '../errors.js';
import { SIZE_LIMIT } from './banana.js';
import type { RemoteReference } from './references.js';
import { completeFailure } from './failures.js';

/**
 * Largest byte string we put in one call: under Banana's 640 KiB with room to spare. The master would refuse
 * more (BananaError drops the connection), so bigger file blocks and texts go in several calls.
 */
export const MAX_PAYLOAD = SIZE_LIMIT - 128 * 1024;

/** Cuts text whose UTF-8 form exceeds MAX_PAYLOAD (the PB master re-splits lines itself, so any cut is fine). */
export function splitText(text: string, limit = MAX_PAYLOAD): string[] {
  if (text.length * 3 <= limit || Buffer.byteLength(text, 'utf8') <= limit) return [text];
  const out: string[] = [];
  const step = Math.max(2, Math.floor(limit / 3));
  let i = 0;
  while (i < text.length) {
    let end = Math.min(text.length, i + step);
    // never cut a surrogate pair
    const c = text.charCodeAt(end - 1);
    if (end < text.length && c >= 0xd800 && c <= 0xdbff) end--;
    out.push(text.slice(i, end));
    i = end;
  }
  return out;
}

/** The `{key: value}` dicts for one item: ProtocolCommandPb.protocol_send_update_message sends text only. */
export function updateDicts(item: UpdateItem): Record<string, unknown>[] {
  switch (item.kind) {
    case 'text':
      return splitText(item.chunk.text).map((t) => ({ [item.key]: t }));
    case 'log':
      return splitText(item.chunk.text).map((t) => ({ log: new PyTuple([item.name, t]) }));
    case 'status':
      // PyFloat and PyTuple values jelly as Python's float and tuple: the master stores what it gets
      return [{ [item.key]: item.value }];
  }
}

/** The master-side references of one running command, and the channel the command reports through. */
export class CommandLink {
  private completion: Promise<void> | undefined;

  constructor(
    private readonly ref: RemoteReference,
    private readonly writerRef: RemoteReference | undefined,
    private readonly readerRef: RemoteReference | undefined,
    private readonly what: string,
    private readonly logger: Logger,
    private readonly backlog?: () => number,
  ) {}

  private logFailure(call: string): (err: unknown) => void {
    return (err) => {
      if (!(err instanceof ConnectionLostError)) this.logger.warn(`${this.what}: ${call} failed: ${errorMessage(err)}`);
    };
  }

  channel(): CommandChannel {
    const ref = this.ref;
    const w = this.writerRef;
    const r = this.readerRef;
    const writer: RemoteWriter | undefined = w && {
      maxWriteBytes: MAX_PAYLOAD,
      write: async (data) => {
        // raw bytes; a block beyond Banana's limit goes in pieces, each acknowledged before the next
        const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        if (bytes.length <= MAX_PAYLOAD) {
          await w.callRemote('write', bytes);
          return;
        }
        for (let off = 0; off < bytes.length; off += MAX_PAYLOAD) await w.callRemote('write', bytes.subarray(off, off + MAX_PAYLOAD));
      },
      close: async () => {
        await w.callRemote('close');
      },
      utime: async (atime, mtime) => {
        await w.callRemote('utime', new PyTuple([new PyFloat(atime), new PyFloat(mtime)]));
      },
      unpack: async () => {
        await w.callRemote('unpack');
      },
    };
    const reader: RemoteReader | undefined = r && {
      read: async (length) => {
        // the master answers with up to `length` bytes, which must fit in one Banana string
        const v = await r.callRemote('read', Math.min(length, MAX_PAYLOAD));
        if (v === null || v === undefined) return null;
        if (Buffer.isBuffer(v)) return v;
        // a closed master-side file answers unicode '' (spec §11.4): text counts as its UTF-8 bytes
        if (typeof v === 'string') return Buffer.from(v, 'utf8');
        throw new AgentError('E_PB_READ', `master answered read with ${typeof v}, not bytes`);
      },
      close: async () => {
        await r.callRemote('close');
      },
    };
    return {
      sendUpdate: (items: UpdateItem[]) => {
        // One call per batch: the master's remote_update takes a list of [dict, num] (buildbot-worker sends one
        // call per item, and every call costs the master a Banana message, a Jelly tree and a Deferred chain).
        // Not awaited, as the Python worker pipelines them; failures are only logged.
        const entries = items.flatMap((item) => updateDicts(item).map((d) => [d, 0]));
        if (entries.length) ref.callRemote('update', entries).catch(this.logFailure('update'));
      },
      complete: (failure: CommandFailure | null) => {
        this.completion = ref.callRemote('complete', failure ? completeFailure(failure) : null).then(() => undefined, this.logFailure('complete'));
        return Promise.resolve();
      },
      // the master handed the writer of the right kind (FileWriter or DirectoryWriter): its methods are the same
      writer: () => writer,
      reader,
      ...(this.backlog ? { backlog: this.backlog } : {}),
      // PB sends only the text of lines
      textOnly: true,
    };
  }

  /** The command is over: once `complete` was answered (or never sent), release the master's objects. */
  async finish(): Promise<void> {
    await this.completion;
    this.ref.release();
    this.writerRef?.release();
    this.readerRef?.release();
  }
}
