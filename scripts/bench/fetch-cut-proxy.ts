// A TCP forwarder on a free loopback port for the fetch benchmark's resume measure: it passes every connection
// through to the origin (nginx), except that the first response after `cutAfter(bytes)` is cut, both sockets
// destroyed, once `bytes` of its body have gone to the client: a connection dropped mid-body, as a flaky link
// drops it. The client sees a reset and resumes with Range.
import net from 'node:net';

const HEADER_END = Buffer.from('\r\n\r\n');

export class CutProxy {
  private cutAt: number | undefined;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(originPort: number): Promise<CutProxy> {
    const ref: { proxy?: CutProxy } = {};
    const server = net.createServer((client) => ref.proxy!.forward(client, originPort));
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
    ref.proxy = new CutProxy(server, port);
    return ref.proxy;
  }

  url(p: string): string {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  /** The next response is cut after this many body bytes. */
  cutAfter(bytes: number): void {
    this.cutAt = bytes;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(client: net.Socket, originPort: number): void {
    const origin = net.connect({ host: '127.0.0.1', port: originPort });
    for (const s of [client, origin]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        origin.destroy();
      });
    }
    client.pipe(origin);
    const cutAt = this.cutAt;
    this.cutAt = undefined;
    if (cutAt === undefined) {
      origin.pipe(client);
      return;
    }
    let head = Buffer.alloc(0);
    let body = -1; // body bytes passed on; -1 while the headers are still coming
    origin.on('data', (chunk: Buffer) => {
      if (body >= cutAt) return; // cut already: what was still in flight is dropped
      let data = chunk;
      if (body < 0) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf(HEADER_END);
        if (end < 0) return;
        client.write(head.subarray(0, end + HEADER_END.length));
        data = head.subarray(end + HEADER_END.length);
        body = 0;
      }
      const room = cutAt - body;
      if (data.length < room) {
        body += data.length;
        if (!client.write(data)) origin.pause();
        return;
      }
      client.write(data.subarray(0, room), () => {
        client.destroy();
        origin.destroy();
      });
      body = cutAt;
      origin.pause();
    });
    client.on('drain', () => origin.resume());
  }
}
