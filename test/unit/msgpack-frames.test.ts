// MaskedFrameWriter: RFC 6455 client frames (FIN, binary, masked) that a reader unmasks back to the payload,
// even when the socket holds its writes and the caller reuses its payload buffer at once.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MaskedFrameWriter } from '../../agent/connection/msgpack/frames.js';

/** Parses one client frame: its payload, unmasked. */
function unframe(f: Buffer): Buffer {
  expect(f[0]).toBe(0x82);
  expect(f[1]! & 0x80).toBe(0x80);
  let len = f[1]! & 0x7f;
  let at = 2;
  if (len === 126) {
    len = f.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    len = f.readUInt32BE(2) * 2 ** 32 + f.readUInt32BE(6);
    at = 10;
  }
  const key = f.subarray(at, at + 4);
  const body = f.subarray(at + 4);
  expect(body.length).toBe(len);
  return Buffer.from(body.map((b, i) => b ^ key[i & 3]!));
}

/** A socket that copies what it is given and completes each write only when told to. */
class HeldSocket extends Writable {
  readonly frames: Buffer[] = [];
  readonly held: (() => void)[] = [];
  constructor() {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.held.push(() => {
      this.frames.push(Buffer.from(chunk));
      cb();
    });
  }
  release(): void {
    while (this.held.length) this.held.shift()!();
  }
}

describe('MaskedFrameWriter', () => {
  it('frames each payload length class (7-bit, 16-bit, 64-bit) so that it unmasks to the payload', () => {
    const sock = new HeldSocket();
    const w = new MaskedFrameWriter(sock);
    const payloads = [0, 1, 125, 126, 65535, 65536, 70001].map((n) => randomBytes(n));
    for (const p of payloads) w.write(p);
    for (let i = 0; i < payloads.length * 2; i++) sock.release();
    expect(sock.frames.map(unframe).map((f, i) => f.equals(payloads[i]!))).toEqual(payloads.map(() => true));
  });

  it('does not reuse a frame buffer before the socket wrote it, while the caller reuses its payload buffer', async () => {
    const sock = new HeldSocket();
    const w = new MaskedFrameWriter(sock);
    const shared = Buffer.alloc(16384);
    const sent: Buffer[] = [];
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 8; i++) {
        randomBytes(shared.length).copy(shared);
        sent.push(Buffer.from(shared));
        w.write(shared);
      }
      // the socket completes writes one at a time, interleaved with new writes
      for (let i = 0; i < 8; i++) {
        sock.release();
        await new Promise((r) => setImmediate(r));
      }
    }
    sock.release();
    await new Promise((r) => setImmediate(r));
    expect(sock.frames.length).toBe(sent.length);
    const differing = sock.frames.map(unframe).flatMap((f, i) => (f.equals(sent[i]!) ? [] : [i]));
    expect(differing).toEqual([]);
  });
});
