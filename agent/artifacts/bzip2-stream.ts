// bzip2 decoding that yields one block at a time, so the consumer's pace (and the extraction's byte cap) holds.
// unbzip2-stream's own stream decodes every block it has input for in one synchronous call and collects each
// block's bytes in a JS array: a bomb of a few KiB (each ~40-byte block expands to ~45 MB) would fill memory before
// any cap is checked. Here its block decoder (pure JS, shared state reset per block, so safe across streams) runs
// one block per step, into a reused byte buffer.

import bzip2 from 'unbzip2-stream/lib/bzip2.js';
import bitIterator from 'unbzip2-stream/lib/bit_iterator.js';

/** Input kept ahead of the decoder: a whole compressed block (at most ~900 kB + margin) must be buffered. */
const BLOCK_LOOKAHEAD = 25_000;
/** Output chunks handed on at a time. */
const OUT_CHUNK = 1024 * 1024;

/** A byte sink that grows by doubling; `take` hands out what it holds and empties it. */
class ByteSink {
  private buf = Buffer.allocUnsafe(OUT_CHUNK);
  length = 0;
  readonly push = (b: number): void => {
    if (this.length === this.buf.length) {
      const bigger = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, this.length);
      this.buf = bigger;
    }
    this.buf[this.length++] = b;
  };
  *take(): Generator<Buffer> {
    for (let at = 0; at < this.length; at += OUT_CHUNK) yield Buffer.from(this.buf.subarray(at, Math.min(this.length, at + OUT_CHUNK)));
    this.length = 0;
  }
}

/** Decodes one or more concatenated bzip2 streams (pbzip2, lbzip2 write several). */
export async function* bunzip2(input: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let received = 0;
  let ended = false;
  const source: AsyncIterator<Buffer> =
    Symbol.asyncIterator in input
      ? input[Symbol.asyncIterator]()
      : (async function* () {
          yield* input;
        })();
  const fill = async (want: number, bits: BitReader | null): Promise<void> => {
    while (!ended && received - (bits?.bytesRead ?? 0) < want) {
      const r = await source.next();
      if (r.done) ended = true;
      else if (r.value.length > 0) {
        queue.push(r.value);
        received += r.value.length;
      }
    }
  };
  await fill(1, null);
  if (queue.length === 0) throw new Error('empty bzip2 data');
  const bits = bitIterator(() => queue.shift());
  const sink = new ByteSink();
  let blockSize = 0;
  let streamCRC: number | null = null;
  let buf = new Int32Array(0);
  try {
    for (;;) {
      await fill(BLOCK_LOOKAHEAD + 100_000 * (blockSize || 9), bits);
      if (received <= bits.bytesRead) break;
      if (!blockSize) {
        blockSize = bzip2.header(bits);
        streamCRC = 0;
        if (buf.length !== 100_000 * blockSize) buf = new Int32Array(100_000 * blockSize);
        continue;
      }
      streamCRC = bzip2.decompress(bits, sink.push, buf, buf.length, streamCRC);
      if (streamCRC === null) blockSize = 0;
      yield* sink.take();
    }
  } catch (err) {
    // the bit reader runs past the input on a cut stream: a TypeError, not a Bzip2Error
    throw new Error(err instanceof TypeError ? 'unexpected end of bzip2 data' : `bad bzip2 data: ${(err as Error).message}`);
  } finally {
    await source.return?.();
  }
  if (blockSize !== 0) throw new Error('unexpected end of bzip2 data');
}
