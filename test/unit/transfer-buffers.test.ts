// The transfers' reused buffers: an upload block is filled again only after its write was answered, each at most
// once; the write-behind's gather buffer only after its file write is done; the bytes sent and written are the
// source's, in order.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendBlocks, TransferState } from '../../agent/commands/upload-file.js';
import { BlockPool, FileBlockReader } from '../../agent/fs/block-reader.js';
import { WriteBehind } from '../../agent/transfer/write-behind.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bbagent-xferbuf-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Resolves after a turn of the event loop: an answer arriving later, while other blocks are read. */
const later = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('FileBlockReader', () => {
  it('fills a released block again, once, and ignores what it did not hand out', async () => {
    const file = join(dir, 'reuse');
    const data = randomBytes(40_000);
    writeFileSync(file, data);
    const fh = await open(file);
    try {
      const reader = new FileBlockReader(fh);
      const a = await reader.read(10_000);
      const b = await reader.read(10_000);
      expect(a.buffer).not.toBe(b.buffer);
      reader.release(a);
      reader.release(a); // a second release of the same block is ignored
      reader.release(Buffer.alloc(10_000)); // not this reader's
      const c = await reader.read(10_000);
      const d = await reader.read(10_000);
      expect(c.buffer).toBe(a.buffer);
      expect(d.buffer).not.toBe(a.buffer);
      expect(Buffer.concat([b, c, d]).equals(data.subarray(10_000))).toBe(true);
      expect((await reader.read(10_000)).length).toBe(0);
    } finally {
      await fh.close();
    }
  });

  it('never refills a block whose write is unanswered: every write sees its bytes until answered', async () => {
    const file = join(dir, 'upload');
    const data = randomBytes(3 * 1024 * 1024 + 12_345);
    writeFileSync(file, data);
    const fh = await open(file);
    const seen: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    try {
      await sendBlocks(new TransferState(), file, new FileBlockReader(fh), 65_536, null, async (block) => {
        const copy = Buffer.from(block);
        buffers.add(block.buffer);
        await later();
        await later();
        // what the transport sends is still the block as it was given
        expect(Buffer.from(block).equals(copy)).toBe(true);
        seen.push(copy);
      });
    } finally {
      await fh.close();
    }
    expect(Buffer.concat(seen).equals(data)).toBe(true);
    // 49 blocks went through a handful of buffers (a 1 MiB window of 64 KiB blocks and the ones read ahead)
    expect(seen.length).toBe(49);
    expect(buffers.size).toBeLessThanOrEqual(20);
  });
});

describe('BlockPool', () => {
  it('takes back only whole buffers it handed out: a view of a part may still be in use', () => {
    const pool = new BlockPool();
    const a = pool.take(4096);
    pool.release(a.subarray(0, 1000)); // the archive's reader may still hold the rest
    pool.release(a.subarray(1000));
    expect(pool.take(4096).buffer).not.toBe(a.buffer);
    pool.release(a);
    expect(pool.take(4096).buffer).toBe(a.buffer);
    // small sizes too get their own memory, never a slice of Buffer's shared pool
    expect(pool.take(16).buffer.byteLength).toBe(16);
  });
});

describe('WriteBehind', () => {
  it('writes the blocks in order, gathering into a buffer not refilled while its write runs', async () => {
    const input = randomBytes(1024 * 1024 + 777);
    const written: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    const out = new WriteBehind(async (chunk) => {
      const copy = Buffer.from(chunk);
      buffers.add(chunk.buffer);
      await later();
      expect(chunk.equals(copy)).toBe(true);
      written.push(copy);
    }, 64 * 1024);
    for (let off = 0; off < input.length; off += 16_384) await out.push(Buffer.from(input.subarray(off, off + 16_384)));
    await out.flush();
    expect(Buffer.concat(written).equals(input)).toBe(true);
    // gathered writes reuse one buffer; only a last write of a single block may be that block itself
    expect(buffers.size).toBeLessThanOrEqual(2);
    expect(written.length).toBeGreaterThan(10);
  });
});
