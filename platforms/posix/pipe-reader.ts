// Reads a child's stdout or stderr pipe into one reused buffer (net.Socket's `onread` option), instead of
// through the stream machinery of the socket child_process made for it. A step's output arrives as many small
// reads (a trickle: 100 reads of 20 KiB over 10 s), and each read through a stream costs a fresh 64 KiB
// buffer plus the stream's bookkeeping (push, emit, a nextTick to read more), run in V8's slower tiers since
// a few reads a second never make them hot: about half of Node's CPU per read (scripts/bench, trickle).
//
// The pipe's handle is moved from child_process's socket to a socket of ours with `onread`; the old socket is
// destroyed without its handle, which tells child_process that this stdio stream closed. Where the handle
// is not what this expects (another Node), the pipe is read as a stream, as before.

import net from 'node:net';
import type { Readable } from 'node:stream';

/** The size of one read (bytes): a pipe's default capacity on Linux, and what Node's streams read at most. */
export const PIPE_READ_BYTES = 64 * 1024;

/** The one buffer every pipe is read into; a read's data is passed on (and copied out) before the next read. */
let shared: Buffer | undefined;

export interface PipeReader {
  pause(): void;
  resume(): void;
  /** Stops reading: the pipe is closed (onClose follows). */
  destroy(): void;
}

/** The part of a libuv stream handle this relies on. */
interface StreamHandle {
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
}

function isStreamHandle(h: unknown): h is StreamHandle {
  if (typeof h !== 'object' || h === null) return false;
  const o = h as Record<string, unknown>;
  return typeof o['readStart'] === 'function' && typeof o['readStop'] === 'function' && typeof o['useUserBuffer'] === 'function';
}

/**
 * Reads `stream` (a child's stdout or stderr as child_process made it) from now on. `onData` gets each read's
 * bytes in a buffer that is reused after it returns: it must copy what it keeps (decoding does). `onClose`
 * fires once, after the pipe's end or destroy(). `direct: false` reads through the stream, as Node offers it.
 */
export function readPipe(stream: Readable, onData: (data: Buffer) => void, onClose: () => void, direct = true): PipeReader {
  const owner = stream as Readable & { _handle?: unknown };
  const handle = owner._handle;
  if (!direct || !isStreamHandle(handle) || stream.readableFlowing === false) return streamReader(stream, onData, onClose);
  shared ??= Buffer.allocUnsafe(PIPE_READ_BYTES);
  const buffer = shared;
  // child_process's socket lets go of the handle, and its close (without one) counts as this stdio's close
  owner._handle = null;
  stream.destroy();
  const socket = new net.Socket({
    handle: handle as unknown as net.SocketConstructorOpts['handle'],
    readable: true,
    writable: false,
    onread: {
      buffer,
      callback: (n: number): boolean => {
        onData(buffer.subarray(0, n));
        return true; // false would stop reading
      },
    },
  });
  socket.on('error', () => {}); // a read error ends the pipe like its end does ('close' follows)
  socket.on('end', () => socket.destroy());
  socket.once('close', onClose);
  return { pause: () => socket.pause(), resume: () => socket.resume(), destroy: () => socket.destroy() };
}

function streamReader(stream: Readable, onData: (data: Buffer) => void, onClose: () => void): PipeReader {
  stream.on('data', onData);
  stream.on('error', () => {});
  stream.once('close', onClose);
  return { pause: () => stream.pause(), resume: () => stream.resume(), destroy: () => stream.destroy() };
}
