// Large client messages (output updates, transfer blocks) framed here and written on the connection's socket,
// instead of by ws. A client frame is masked (RFC 6455 5.3), and ws masks a message into a new buffer of its
// size: one more buffer per message, freed only when V8 next collects (an upload of 16 KiB blocks grew the
// malloc heap ~20 MiB). Here the frame is masked into one of the connection's slabs (slabs.ts), reused once the
// socket has written it. Used only while ws itself writes each frame whole, at once (no permessage-deflate), so
// frames never interleave.

import { randomFillSync } from 'node:crypto';
import type { Writable } from 'node:stream';
import { SlabPool } from '../slabs.js';

/** Idle frame buffers larger than a slab (transfer blocks of a master's large blocksize) kept for reuse, at most (bytes). */
const KEEP_BYTES = 2 * 1024 * 1024;
/** FIN + binary (opcode 2). */
const FIN_BINARY = 0x82;
const MASKED = 0x80;

export class MaskedFrameWriter {
  private readonly idle: Buffer[] = [];
  private idleBytes = 0;
  private readonly keys = Buffer.alloc(4096);
  private keyAt = this.keys.length;

  constructor(
    private readonly socket: Writable,
    private readonly slabs = new SlabPool(),
  ) {}

  /** Writes `payload` as one masked binary frame; `payload` may be reused as soon as this returns. */
  write(payload: Uint8Array): void {
    const len = payload.length;
    const head = len < 126 ? 6 : len < 65536 ? 8 : 14;
    const frame = this.take(head + len);
    frame[0] = FIN_BINARY;
    if (len < 126) frame[1] = MASKED | len;
    else if (len < 65536) {
      frame[1] = MASKED | 126;
      frame.writeUInt16BE(len, 2);
    } else {
      frame[1] = MASKED | 127;
      frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
      frame.writeUInt32BE(len >>> 0, 6);
    }
    const key = this.maskKey();
    frame.set(key, head - 4);
    const k0 = key[0]!;
    const k1 = key[1]!;
    const k2 = key[2]!;
    const k3 = key[3]!;
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      frame[head + i] = payload[i]! ^ k0;
      frame[head + i + 1] = payload[i + 1]! ^ k1;
      frame[head + i + 2] = payload[i + 2]! ^ k2;
      frame[head + i + 3] = payload[i + 3]! ^ k3;
    }
    for (; i < len; i++) frame[head + i] = payload[i]! ^ key[i & 3]!;
    // called back once written, or with an error when the socket is destroyed
    this.socket.write(frame.subarray(0, head + len), () => this.give(frame));
  }

  /** A random masking key from a pool refilled by the CSPRNG (as ws draws its own). */
  private maskKey(): Buffer {
    if (this.keyAt + 4 > this.keys.length) {
      randomFillSync(this.keys);
      this.keyAt = 0;
    }
    const key = this.keys.subarray(this.keyAt, this.keyAt + 4);
    this.keyAt += 4;
    return key;
  }

  private take(bytes: number): Buffer {
    if (bytes <= this.slabs.slabBytes) return this.slabs.take(bytes);
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const b = this.idle[i]!;
      if (b.length >= bytes) {
        this.idle.splice(i, 1);
        this.idleBytes -= b.length;
        return b;
      }
    }
    return Buffer.allocUnsafeSlow(bytes);
  }

  private give(frame: Buffer): void {
    if (frame.length <= this.slabs.slabBytes) {
      this.slabs.give(frame);
      return;
    }
    if (this.idleBytes + frame.length > KEEP_BYTES) return;
    this.idle.push(frame);
    this.idleBytes += frame.length;
  }
}
