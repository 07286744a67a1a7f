// The connection's slabs (reused buffers for large outgoing messages): a slab is reused only after the socket's
// write callback, a fresh buffer is the fallback when all are busy, every slab comes back when the connection is
// lost, and the bytes on the wire are those of the unpooled encoding (PB's broker, msgpack's frame writer).
import net, { type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { SlabPool, SlabText } from '../../agent/connection/slabs.js';
import { Broker } from '../../agent/connection/pb/broker.js';
import { dialectOffer } from '../../agent/connection/pb/banana.js';
import { MaskedFrameWriter } from '../../agent/connection/msgpack/frames.js';
import { silentLogger } from '../../agent/log.js';
import { PyTuple } from '../../agent/py/values.js';

const KiB = 1024;

describe('SlabPool', () => {
  it('makes at most maxSlabs, hands a slab out again only after it was given back, and falls back to fresh buffers', () => {
    const pool = new SlabPool({ slabBytes: 1000, maxSlabs: 2 });
    const a = pool.tryTake()!;
    const b = pool.tryTake()!;
    expect(a).not.toBe(b);
    expect(a.length).toBe(1000);
    expect(pool.tryTake()).toBeUndefined();
    expect(pool.busy).toBe(2);
    // all busy: a fresh buffer, which give() ignores
    const fresh = pool.take(500);
    expect(fresh).not.toBe(a);
    expect(fresh).not.toBe(b);
    // the refused tryTake and this take
    expect(pool.fallbacks).toBe(2);
    expect(pool.requests).toBe(4);
    pool.give(fresh);
    expect(pool.tryTake()).toBeUndefined();
    pool.give(a);
    pool.give(a); // twice is harmless
    expect(pool.busy).toBe(1);
    expect(pool.take(1000)).toBe(a);
    expect(pool.tryTake()).toBeUndefined();
    // larger than a slab: always fresh
    pool.give(b);
    const big = pool.take(1001);
    expect(big).not.toBe(b);
    expect(big.length).toBe(1001);
    expect(pool.take(10)).toBe(b);
    expect(pool.size).toBe(2);
  });

  it('on close drops idle slabs at once and busy ones when they come back, and hands out none any more', () => {
    const pool = new SlabPool({ slabBytes: 100, maxSlabs: 3 });
    const a = pool.tryTake()!;
    const b = pool.tryTake()!;
    pool.give(a);
    pool.close();
    expect(pool.size).toBe(1);
    expect(pool.tryTake()).toBeUndefined();
    pool.give(b);
    expect(pool.size).toBe(0);
    expect(pool.busy).toBe(0);
    expect(pool.take(50)).not.toBe(b);
  });
});

describe('SlabText', () => {
  const texts = [
    'x'.repeat(2000),
    'é€'.repeat(700),
    '🎉 emoji '.repeat(200),
    // lone surrogates: U+FFFD, as Buffer.from writes them
    'a\ud800b'.repeat(400) + '\udfff'.repeat(10) + '\ud83d',
    'short',
  ];

  it('writes what Buffer.from(text, "utf8") writes, several texts packed in one slab', () => {
    const pool = new SlabPool({ slabBytes: 64 * KiB, maxSlabs: 1 });
    const t = new SlabText(pool);
    const out = texts.map((s) => t.bytes(s));
    expect(out.map((b, i) => b.equals(Buffer.from(texts[i]!, 'utf8')))).toEqual(texts.map(() => true));
    // the long ones share the slab, one after the other
    expect(t.usesSlab).toBe(true);
    expect(out[1]!.buffer).toBe(out[0]!.buffer);
    expect(out[1]!.byteOffset).toBe(out[0]!.byteOffset + out[0]!.length);
    expect(pool.busy).toBe(1);
    t.done();
    expect(pool.busy).toBe(0);
  });

  it('gives a text that does not fit, or any text when no slab is free, its own buffer', () => {
    const pool = new SlabPool({ slabBytes: 4 * KiB, maxSlabs: 1 });
    const t = new SlabText(pool);
    const first = t.bytes('a'.repeat(3 * KiB));
    const tooMuch = 'é'.repeat(KiB); // 2 KiB: does not fit in the 1 KiB left
    const second = t.bytes(tooMuch);
    expect(second.buffer).not.toBe(first.buffer);
    expect(second.equals(Buffer.from(tooMuch))).toBe(true);
    const other = new SlabText(pool);
    const third = other.bytes('b'.repeat(2 * KiB));
    expect(other.usesSlab).toBe(false);
    expect(third.equals(Buffer.from('b'.repeat(2 * KiB)))).toBe(true);
  });
});

interface Sent {
  data: Buffer;
  written: (() => void) | undefined;
}

/** A broker past the dialect negotiation whose writes complete only when the test says so. */
function heldBroker(slabs?: SlabPool): { broker: Broker; sent: Sent[]; wire: Buffer[] } {
  const sent: Sent[] = [];
  const broker = new Broker({ send: (data, written) => sent.push({ data, written }), close: () => {}, logger: silentLogger, ...(slabs ? { slabs } : {}) });
  broker.receive(dialectOffer());
  return { broker, sent, wire: [] };
}

/** Completes the held writes in order: the socket reads each part only now, as a busy socket would. */
function complete(h: { sent: Sent[]; wire: Buffer[] }): void {
  for (const s of h.sent.splice(0)) {
    h.wire.push(Buffer.from(s.data));
    s.written?.();
  }
}

/** An update call as the PB command link makes it: [[{stdout: text}, 0], ...]. */
function update(broker: Broker, texts: string[]): void {
  const ref = broker.root();
  void broker.callRemote(ref, 'update', [texts.map((t, i) => [{ [i % 2 ? 'stderr' : 'stdout']: t }, 0])], {}).catch(() => {});
}

describe('PB broker with slabs', () => {
  const batches = [0, 1, 2, 3, 4].map((i) => [`${i}`.repeat(300 * KiB) + 'ü\n', `line ${i}\n`.repeat(5000)]);

  it('writes the bytes of the unpooled encoding, never reuses a slab before its write called back, and falls back when all are busy', () => {
    const pool = new SlabPool({ maxSlabs: 2 });
    const pooled = heldBroker(pool);
    const plain = heldBroker();
    // three updates in flight with two slabs: the third gets buffers of its own
    for (const b of batches.slice(0, 3)) update(pooled.broker, b);
    expect(pool.busy).toBe(2);
    expect(pool.size).toBe(2);
    complete(pooled);
    expect(pool.busy).toBe(0);
    // the slabs are reused, and the bytes written before were not overwritten (they were read at completion)
    for (const b of batches.slice(3)) update(pooled.broker, b);
    expect(pool.size).toBe(2);
    expect(pool.busy).toBe(2);
    complete(pooled);
    for (const b of batches) update(plain.broker, b);
    complete(plain);
    expect(Buffer.concat(pooled.wire).equals(Buffer.concat(plain.wire))).toBe(true);
    expect(Buffer.concat(plain.wire).length).toBeGreaterThan(5 * 300 * KiB);
  });

  it('gives the slab back when encoding fails, and when the connection is lost with the write pending', async () => {
    const pool = new SlabPool({ maxSlabs: 1 });
    const h = heldBroker(pool);
    // a value jelly refuses, after a text that went into the slab
    const refused = h.broker.callRemote(h.broker.root(), 'update', [['x'.repeat(4 * KiB), () => 1]], {});
    await expect(refused).rejects.toMatchObject({ code: 'E_JELLY' });
    expect(pool.size).toBe(1);
    expect(pool.busy).toBe(0);
    const p = h.broker.callRemote(h.broker.root(), 'update', [new PyTuple(['y'.repeat(4 * KiB)])], {});
    expect(pool.busy).toBe(1);
    h.broker.connectionLost('test');
    pool.close();
    await expect(p).rejects.toMatchObject({ code: 'E_CONNECTION_LOST' });
    // a destroyed socket calls back its pending writes (with an error): the slab comes back and is dropped
    complete(h);
    expect(pool.busy).toBe(0);
    expect(pool.size).toBe(0);
  });
});

/** A socket that completes each write only when told to, copying the bytes then. */
class HeldSocket extends Writable {
  readonly written: Buffer[] = [];
  private readonly held: (() => void)[] = [];
  constructor() {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.held.push(() => {
      this.written.push(Buffer.from(chunk));
      cb();
    });
  }
  async drain(): Promise<void> {
    while (this.held.length) {
      this.held.shift()!();
      await new Promise((r) => setImmediate(r));
    }
  }
}

function unmask(f: Buffer): Buffer {
  const len = f[1]! & 0x7f;
  const at = len === 126 ? 4 : len === 127 ? 10 : 2;
  const key = f.subarray(at, at + 4);
  return Buffer.from(f.subarray(at + 4).map((b, i) => b ^ key[i & 3]!));
}

let server: net.Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

describe('MaskedFrameWriter with slabs', () => {
  it('masks into slabs reused only after the write called back, with fresh buffers while all are busy', async () => {
    const pool = new SlabPool({ slabBytes: 600 * KiB, maxSlabs: 2 });
    const sock = new HeldSocket();
    const w = new MaskedFrameWriter(sock, pool);
    const payloads = [0, 1, 2, 3, 4, 5].map(() => randomBytes(500 * KiB));
    for (const p of payloads.slice(0, 3)) w.write(p);
    expect(pool.busy).toBe(2);
    expect(pool.fallbacks).toBe(1);
    await sock.drain();
    expect(pool.busy).toBe(0);
    for (const p of payloads.slice(3)) w.write(p);
    expect(pool.size).toBe(2);
    expect(pool.fallbacks).toBe(2);
    await sock.drain();
    expect(sock.written.map(unmask).map((f, i) => f.equals(payloads[i]!))).toEqual(payloads.map(() => true));
  });

  it('gets every slab back when the connection is lost with writes pending (a real socket the peer stopped reading)', async () => {
    const peer = new Promise<net.Socket>((resolve) => {
      server = net.createServer((s) => {
        s.pause(); // reads nothing: our writes pile up
        resolve(s);
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const sock = net.connect((server!.address() as AddressInfo).port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const remote = await peer;
    const pool = new SlabPool({ slabBytes: 600 * KiB, maxSlabs: 4 });
    const w = new MaskedFrameWriter(sock, pool);
    const payload = randomBytes(500 * KiB);
    // fill the kernel's buffers, then queue frames in slabs behind what cannot be sent
    while (sock.writableLength < 2 * 1024 * KiB) {
      w.write(payload);
      await new Promise((r) => setTimeout(r, 1));
    }
    while (pool.busy < 4) {
      w.write(payload);
      await new Promise((r) => setImmediate(r));
    }
    expect(pool.busy).toBe(4);
    const closed = new Promise((r) => sock.once('close', r));
    sock.destroy();
    pool.close();
    await closed;
    await new Promise((r) => setImmediate(r));
    expect(pool.busy).toBe(0);
    expect(pool.size).toBe(0);
    remote.destroy();
  });
});
