// The bounded permessage-deflate inflater (agent/connection/msgpack/inflate.ts) on a real ws client and server, with
// small limits, and its check of the ws internals it relies on.
import { encode } from '@msgpack/msgpack';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import * as wsModule from 'ws';
import { WebSocket, WebSocketServer } from 'ws';
import { boundInflation, checkWsInternals, InflateError, readInflateNotice, type WsInternals } from '../../agent/connection/msgpack/inflate.js';

const KiB = 1024;
const LIMITS = { keepBytes: 256 * KiB, maxBytes: 4 * 256 * KiB };

interface Pair {
  server: WebSocket;
  client: WebSocket;
  received: Buffer[];
  errors: Error[];
  /** The code the client closed with, as the server saw it. */
  closed: Promise<number>;
  next(): Promise<Buffer>;
}

let wss: WebSocketServer | undefined;
afterEach(async () => {
  if (!wss) return;
  for (const c of wss.clients) c.terminate();
  await new Promise((r) => wss!.close(r));
  wss = undefined;
});

/** A server and a client that negotiated permessage-deflate, the client's inflation bounded by LIMITS. */
async function pair(serverDeflate: Record<string, unknown> = {}): Promise<Pair> {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: { threshold: 0, ...serverDeflate } });
  await new Promise((r) => wss!.once('listening', r));
  const serverSide = new Promise<WebSocket>((r) => wss!.once('connection', r));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, { perMessageDeflate: {}, maxPayload: LIMITS.keepBytes });
  const received: Buffer[] = [];
  const errors: Error[] = [];
  let wake: (() => void) | undefined;
  client.on('message', (d: Buffer) => {
    received.push(d);
    wake?.();
  });
  client.on('error', (e) => errors.push(e));
  await new Promise<void>((resolve, reject) => {
    client.once('open', () => {
      boundInflation(client, LIMITS);
      resolve();
    });
    client.once('error', reject);
  });
  const server = await serverSide;
  expect(client.extensions).toContain('permessage-deflate');
  const closed = new Promise<number>((r) => server.once('close', (code) => r(code)));
  let taken = 0;
  const next = async (): Promise<Buffer> => {
    while (received.length <= taken) await new Promise<void>((r) => (wake = r));
    return received[taken++]!;
  };
  return { server, client, received, errors, closed, next };
}

const msg = (fields: Record<string, unknown>): Buffer => Buffer.from(encode(fields));

describe('bounded inflation', () => {
  for (const [what, opts] of [
    ['context takeover', {}],
    ['no context takeover, a 1 KiB window', { serverNoContextTakeover: true, serverMaxWindowBits: 10 }],
  ] as const) {
    it(`delivers messages up to the limit, a notice for a bigger one, and the messages after it (${what})`, async () => {
      const p = await pair(opts);
      const text = 'a line of build output that repeats\n'.repeat(200);
      const small = msg({ op: 'print', message: text, seq_number: 1 });
      p.server.send(small);
      expect(await p.next()).toEqual(small);
      // just at the limit, in three fragments
      const atLimit = Buffer.alloc(LIMITS.keepBytes, 7);
      p.server.send(atLimit.subarray(0, 1000), { fin: false });
      p.server.send(atLimit.subarray(1000, 200_000), { fin: false });
      p.server.send(atLimit.subarray(200_000), { fin: true });
      expect((await p.next()).equals(atLimit)).toBe(true);
      // over it: seq_number last, after the big value, as the 3.7 master writes it
      const big = msg({ op: 'start_command', args: { data: Buffer.alloc(LIMITS.keepBytes * 2) }, seq_number: 2 });
      p.server.send(big.subarray(0, 100), { fin: false });
      p.server.send(big.subarray(100), { fin: true });
      const notice = await p.next();
      expect(notice.length).toBeLessThan(100);
      expect(readInflateNotice(notice)).toEqual({ bytes: big.length, op: 'start_command', seq: 2 });
      // the context the master's compressor kept still fits
      p.server.send(small);
      expect(await p.next()).toEqual(small);
      expect(readInflateNotice(small)).toBeUndefined();
      expect(p.errors).toEqual([]);
      expect(p.client.readyState).toBe(WebSocket.OPEN);
    });
  }

  it('closes with 1009 past the ceiling', async () => {
    const p = await pair();
    p.server.send(Buffer.alloc(LIMITS.maxBytes + 1));
    expect(await p.closed).toBe(1009);
    expect(p.errors).toHaveLength(1);
    expect(p.errors[0]).toBeInstanceOf(InflateError);
    expect(p.errors[0]!.message).toBe(`the master sent a message that inflates past ${LIMITS.maxBytes} bytes: closing with 1009 (message too big)`);
    expect(p.received).toEqual([]);
  });

  it('closes with 1007 on compressed data that does not inflate', async () => {
    const p = await pair();
    // FIN, RSV1 (compressed), binary; 0xff starts a deflate block of the reserved type 3
    (p.server as unknown as { _socket: NodeJS.WritableStream })._socket.write(Buffer.from([0xc2, 0x02, 0xff, 0xff]));
    expect(await p.closed).toBe(1007);
    expect(p.errors[0]).toMatchObject({ code: 'E_MSGPACK_INFLATE', closeCode: 1007, message: expect.stringContaining('does not inflate') });
  });
});

describe('checkWsInternals', () => {
  const real = wsModule as unknown as WsInternals;

  it('passes with the installed ws', () => {
    expect(() => checkWsInternals()).not.toThrow();
  });

  it('fails, naming what changed, when ws no longer works as the inflater expects', () => {
    type Ctor = new (o: Record<string, unknown>) => Record<string, unknown>;
    const RealReceiver = real.Receiver as unknown as Ctor;
    const RealDeflate = real.PerMessageDeflate as unknown as Ctor;
    const variants: [string, Partial<Record<keyof WsInternals, unknown>>, RegExp][] = [
      [
        'params renamed',
        {
          PerMessageDeflate: class extends RealDeflate {
            accept(): unknown {
              return (this['params'] = { serverNoContextTakeover: true });
            }
          },
        },
        /PerMessageDeflate.params reads a server answer as/,
      ],
      [
        'fin no longer passed',
        {
          Receiver: class extends RealReceiver {
            decompress(this: Record<string, unknown> & { _fin: boolean }, data: Buffer, cb: unknown): void {
              const fin = this._fin;
              this._fin = true;
              (RealReceiver.prototype as unknown as { decompress: (d: Buffer, c: unknown) => void }).decompress.call(this, data, cb);
              this._fin = fin;
            }
          },
        },
        /did .*"ab\."/,
      ],
      [
        'the next frame inflated before the last was answered',
        {
          Receiver: class extends RealReceiver {
            decompress(
              this: Record<string, unknown> & { _extensions: Record<string, { decompress: (d: Buffer, f: boolean, c: () => void) => void }> },
              data: Buffer,
            ): void {
              this._extensions['permessage-deflate']!.decompress(data, true, () => {});
              this['_state'] = 0;
            }
          },
        },
        /asks to inflate the next frame before the last one was answered/,
      ],
    ];
    for (const [what, change, re] of variants) {
      const lib = { ...real, ...change } as WsInternals;
      expect(() => checkWsInternals(lib), what).toThrow(expect.objectContaining({ code: 'E_WS_INTERNALS', message: expect.stringMatching(re) }));
    }
  });
});
