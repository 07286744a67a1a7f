// A master's blocksize is an integer of any size. Found by the protocol fuzz: upload_file with blocksize 2^31 or
// more made the agent allocate that much and then abort inside Node's file read (its length must fit in 32 bits).
// Blocks are capped; the master receives the same bytes in more writes.
import { describe, expect, it } from 'vitest';
import { MAX_BLOCK_BYTES, sendBlocks, TransferState, WRITE_WINDOW_BYTES } from '../../agent/commands/upload-file.js';

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

describe('overlapped writes', () => {
  /** A writer whose answers come when the test lets them, in order, like a master's over one connection. */
  function slowWriter(fail?: { at: number; error: Error }) {
    const pending: (() => void)[] = [];
    const sizes: number[] = [];
    let unanswered = 0;
    let most = 0;
    const write = (d: Uint8Array): Promise<void> => {
      const n = sizes.push(d.length);
      unanswered++;
      most = Math.max(most, unanswered);
      return new Promise<void>((resolve, reject) => {
        pending.push(() => {
          unanswered--;
          if (fail && n === fail.at) reject(fail.error);
          else resolve();
        });
      });
    };
    // answers one write per turn of the event loop
    const timer = setInterval(() => pending.shift()?.(), 0);
    return { write, sizes, most: () => most, stop: () => clearInterval(timer) };
  }

  function zeros(total: number) {
    let left = total;
    const asked: number[] = [];
    return {
      asked,
      read: async (n: number): Promise<Uint8Array> => {
        asked.push(n);
        const k = Math.min(n, left);
        left -= k;
        return new Uint8Array(k);
      },
    };
  }

  it('keeps up to WRITE_WINDOW_BYTES unanswered, and returns only once all are answered', async () => {
    const w = slowWriter();
    const source = zeros(4 * WRITE_WINDOW_BYTES);
    try {
      await sendBlocks(new TransferState(), '/f', source, 16_384, null, w.write);
    } finally {
      w.stop();
    }
    expect(w.sizes.reduce((a, b) => a + b, 0)).toBe(4 * WRITE_WINDOW_BYTES);
    expect(w.sizes.every((n) => n === 16_384)).toBe(true);
    // one at a time would be 1; never more than the window (+ the block that crossed it)
    expect(w.most()).toBeGreaterThan(1);
    expect(w.most()).toBeLessThanOrEqual(WRITE_WINDOW_BYTES / 16_384 + 1);
  });

  it('the last block goes out alone, once every earlier write is answered', async () => {
    const w = slowWriter();
    const source = zeros(2 * WRITE_WINDOW_BYTES + 1000);
    const unansweredAtWrite: number[] = [];
    let unanswered = 0;
    const write = (d: Uint8Array): Promise<void> => {
      unansweredAtWrite.push(unanswered++);
      return w.write(d).then(() => void unanswered--);
    };
    try {
      await sendBlocks(new TransferState(), '/f', source, 16_384, null, write);
    } finally {
      w.stop();
    }
    expect(w.sizes.at(-1)).toBe(1000);
    // earlier blocks overlap; the last one waits for all of them
    expect(Math.max(...unansweredAtWrite)).toBeGreaterThan(1);
    expect(unansweredAtWrite.at(-1)).toBe(0);
  });

  it('a failed write stops the reading and is thrown once the writes sent are answered', async () => {
    const boom = new Error('remote write failed');
    const w = slowWriter({ at: 3, error: boom });
    const source = zeros(4 * WRITE_WINDOW_BYTES);
    try {
      await expect(sendBlocks(new TransferState(), '/f', source, 16_384, null, w.write)).rejects.toBe(boom);
    } finally {
      w.stop();
    }
    // the blocks already sent when the failure came back (and the one read ahead); no more after that
    expect(source.asked.length).toBeLessThanOrEqual(WRITE_WINDOW_BYTES / 16_384 + 6);
    expect(source.asked.length).toBeLessThan(4 * 64);
  });
});
