// An in-test forward proxy on 127.0.0.1 port 0: absolute-URI requests (`GET http://host/path`) are forwarded,
// CONNECT opens a TCP tunnel. It logs what it was asked (method, target, Proxy-Authorization), can cut the
// first responses after some bytes (a link that drops mid-body), and can be made to never answer (a stuck proxy).
import http from 'node:http';
import net from 'node:net';

export interface ProxyLog {
  method: string;
  target: string;
  authorization?: string;
}

export class HttpProxy {
  readonly log: ProxyLog[] = [];
  /** Cut the next response(s) after this many bytes from upstream: one entry per connection, in order. */
  readonly cuts: number[] = [];
  /** Accept connections but never answer. */
  silent = false;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
  ) {
    server.on('connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
    });
  }

  static async start(): Promise<HttpProxy> {
    const ref: { proxy?: HttpProxy } = {};
    const server = http.createServer((req, res) => ref.proxy!.forward(req, res));
    server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => ref.proxy!.tunnel(req, socket, head));
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
    ref.proxy = new HttpProxy(server, port);
    return ref.proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private record(req: http.IncomingMessage): boolean {
    const entry: ProxyLog = { method: req.method ?? '', target: req.url ?? '' };
    if (req.headers['proxy-authorization'] !== undefined) entry.authorization = req.headers['proxy-authorization'];
    this.log.push(entry);
    return !this.silent;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!this.record(req)) return;
    const target = new URL(req.url ?? '');
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const cut = this.cuts.shift();
    const up = http.request({ host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, headers, method: req.method });
    up.on('response', (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      let passed = 0;
      upRes.on('data', (chunk: Buffer) => {
        if (cut !== undefined && passed + chunk.length >= cut) {
          res.write(chunk.subarray(0, cut - passed), () => res.socket?.destroy());
          passed = cut;
          upRes.destroy();
          return;
        }
        passed += chunk.length;
        if (!res.write(chunk)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      });
      upRes.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  private tunnel(req: http.IncomingMessage, client: net.Socket, head: Buffer): void {
    if (!this.record(req)) return;
    const [host, port] = (req.url ?? '').split(/:(?=\d+$)/);
    const up = net.connect({ host: host?.replace(/^\[|\]$/g, ''), port: Number(port) });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
    up.on('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
  }
}
