// A master's blocksize is an integer of any size. Found by the protocol fuzz: upload_file with blocksize 2^31 or
// more made the agent allocate that much and then abort inside Node's file read (its length must fit in 32 bits).
// Blocks are capped; the master receives the same bytes in more writes.
import { describe, expect, it } from 'vitest';
import { MAX_BLOCK_BYTES, sendBlocks, TransferState } from '../../agent/commands/upload-file.js';

describe('transfer block size', () => {
  it.each([2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER])('reads at most MAX_BLOCK_BYTES at once for blocksize %d', async (blocksize) => {
    const asked: number[] = [];
    let left = 20 * 1024 * 1024;
    const source = {
      read: async (n: number): Promise<Uint8Array> => {
        asked.push(n);
        const k = Math.min(n, left);
        left -= k;
        return new Uint8Array(k);
      },
    };
    const written: number[] = [];
    await sendBlocks(new TransferState(), '/f', source, blocksize, null, async (d) => void written.push(d.length));
    expect(Math.max(...asked)).toBe(MAX_BLOCK_BYTES);
    expect(written.reduce((a, b) => a + b, 0)).toBe(20 * 1024 * 1024);
  });

  it('keeps smaller block sizes as they are', async () => {
    const asked: number[] = [];
    const source = { read: async (n: number): Promise<Uint8Array> => (asked.push(n), new Uint8Array(asked.length < 3 ? n : 0)) };
    await sendBlocks(new TransferState(), '/f', source, 16_384, null, async () => {});
    expect(asked).toEqual([16_384, 16_384, 16_384]);
  });
});
