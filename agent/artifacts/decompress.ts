// The plain tar bytes inside a compressed file, as a stream: gzip with node's zlib; zstd with node's zlib where it
// has it (Node >= 22.15) and the pure-JS `fzstd` elsewhere (Node 20); bzip2 with the pure-JS block decoder of
// `unbzip2-stream` (bzip2-stream.ts);
// xz with `xz-decompress` (xz-embedded compiled to WebAssembly, carried inside its JS file). All of them bundle
// into the single executable: no native addon, no program on PATH (Windows has no bzip2 or xz).
//
// Note: xz-decompress decodes one stream at a time per process (a mutex around its WebAssembly instance), so two
// xz extractions in one agent run one after the other.

import { createReadStream } from 'node:fs';
import { Readable, pipeline, type Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import * as zlib from 'node:zlib';
import { Decompress as ZstdJs } from 'fzstd';
import { XzReadableStream } from 'xz-decompress';
import type { ArchiveFormat } from './archive-kind.js';
import { bunzip2 } from './bzip2-stream.js';

/** Bytes read from the archive at a time, and zlib's output chunk (its 16 KiB default costs ~40% on gzip). */
const READ_CHUNK = 256 * 1024;

type ZstdFactory = (opts?: { chunkSize?: number }) => Transform;

/** Node's own zstd decoder when this Node has one (22.15+, 23.8+), else null. */
export function nativeZstd(): ZstdFactory | null {
  const create = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress;
  return typeof create === 'function' ? (opts) => create.call(zlib, opts) : null;
}

/**
 * Compressed bytes given to fzstd per call. fzstd decodes everything a call's input completes, synchronously: one
 * RLE block of ~5 bytes is 128 KiB of output, so this bounds what one step can produce (~25 MiB) before the
 * consumer (and the byte cap) sees it. fzstd queues partial blocks without copying, so small slices cost little.
 */
const ZSTD_SLICE = 1024;

/** fzstd (pure JS) over a byte stream, one slice at a time. */
export async function* jsZstd(input: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
  let out: Buffer[] = [];
  const decoder = new ZstdJs((chunk) => {
    if (chunk.length > 0) out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  });
  const drain = function* (): Generator<Buffer> {
    const ready = out;
    out = [];
    yield* ready;
  };
  for await (const chunk of input) {
    for (let at = 0; at < chunk.length; at += ZSTD_SLICE) {
      decoder.push(chunk.subarray(at, at + ZSTD_SLICE));
      yield* drain();
    }
  }
  decoder.push(new Uint8Array(0), true);
  yield* drain();
}

/** The decoded bytes of `archivePath`; errors of the file or the decoder surface while iterating. */
export function plainStream(archivePath: string, format: Exclude<ArchiveFormat, 'zip'>, signal?: AbortSignal): AsyncIterable<Buffer> {
  const file = createReadStream(archivePath, { highWaterMark: READ_CHUNK, ...(signal ? { signal } : {}) });
  switch (format) {
    case 'tar':
      return file;
    case 'tar.gz':
      return decode(file, zlib.createGunzip({ chunkSize: READ_CHUNK }));
    case 'tar.zst':
      return nativeZstd() ? decode(file, (nativeZstd() as ZstdFactory)({ chunkSize: READ_CHUNK })) : jsZstd(file);
    case 'tar.bz2':
      return bunzip2(file);
    case 'tar.xz':
      return xzStream(file);
  }
}

/** file | decoder; pipeline destroys both on an error of either, and the consumer sees that error. */
function decode(file: Readable, decoder: Transform): AsyncIterable<Buffer> {
  return pipeline(file, decoder, () => {
    // errors reach the consumer through the decoder
  });
}

/** xz-decompress works on web streams. */
async function* xzStream(file: Readable): AsyncGenerator<Buffer> {
  const web = Readable.toWeb(file) as unknown as ReadableStream<Uint8Array>;
  const xz = new XzReadableStream(web) as unknown as WebReadableStream<Uint8Array>;
  try {
    for await (const chunk of xz) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  } finally {
    file.destroy();
  }
}
