// An in-test HTTP(S) origin on 127.0.0.1 port 0 for the fetch tests: it serves one content with a strong ETag and
// Range + If-Range as a static server does, or misbehaves as scripted, one behaviour per request in order (drop
// mid-body, lie about Content-Length, stall, answer a status, ignore Range). It logs every request and how many
// body bytes it sent, so a test can prove what went over the wire.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';

export type Behaviour =
  /** Serve normally (Range, If-Range). */
  | { kind: 'serve' }
  /** Serve normally but close the connection after `bytes` body bytes. */
  | { kind: 'drop'; bytes: number }
  /** Announce the full Content-Length but send only `bytes` and end the response cleanly. */
  | { kind: 'short'; bytes: number }
  /** Send the headers and `bytes` of the body, then nothing (the connection stays open). */
  | { kind: 'stall'; bytes: number }
  /** Answer with `status` and these headers, no body. */
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  /** Answer 200 with the whole content whatever the request said. */
  | { kind: 'ignore-range' };

export interface RequestLog {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  status: number;
  /** Body bytes written to the socket. */
  sent: number;
}

export interface TlsIdentity {
  key: string;
  cert: string;
}

export class HttpOrigin {
  readonly log: RequestLog[] = [];
  readonly script: Behaviour[] = [];
  private content: Buffer;
  etag: string;
  /** Which validators responses carry: a strong ETag, a weak ETag plus Last-Modified, or none. */
  validators: 'etag' | 'weak-etag+date' | 'none' = 'etag';
  readonly lastModified = 'Mon, 07 Dec 2026 07:00:00 GMT';
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: http.Server,
    content: Buffer,
    readonly port: number,
    readonly scheme: 'http' | 'https',
  ) {
    this.content = content;
    this.etag = etagOf(content);
    server.on('connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(content: Buffer, tlsIdentity?: TlsIdentity): Promise<HttpOrigin> {
    const ref: { origin?: HttpOrigin } = {};
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => ref.origin!.handle(req, res);
    const server = tlsIdentity ? https.createServer(tlsIdentity, handler) : http.createServer(handler);
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
    ref.origin = new HttpOrigin(server, content, port, tlsIdentity ? 'https' : 'http');
    return ref.origin;
  }

  url(p = '/file.bin'): string {
    return `${this.scheme}://127.0.0.1:${this.port}${p}`;
  }

  /** Replaces the content (and its ETag), as a new upload to the same URL would. */
  setContent(content: Buffer): void {
    this.content = content;
    this.etag = etagOf(content);
  }

  /** The next requests' behaviours, in order (then 'serve'). */
  plan(...b: Behaviour[]): this {
    this.script.push(...b);
    return this;
  }

  totalSent(): number {
    return this.log.reduce((n, r) => n + r.sent, 0);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const b = this.script.shift() ?? { kind: 'serve' };
    const entry: RequestLog = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, status: 0, sent: 0 };
    this.log.push(entry);
    if (b.kind === 'status') {
      entry.status = b.status;
      res.writeHead(b.status, { 'Content-Length': '0', ...(b.headers ?? {}) });
      return void res.end();
    }
    const { status, start } = b.kind === 'ignore-range' ? { status: 200, start: 0 } : this.range(req);
    entry.status = status;
    if (status === 416) {
      res.writeHead(416, { 'Content-Range': `bytes */${this.content.length}`, 'Content-Length': '0' });
      return void res.end();
    }
    const body = this.content.subarray(start);
    const headers: Record<string, string> = { 'Accept-Ranges': 'bytes', 'Content-Length': String(body.length) };
    if (this.validators === 'etag') headers['ETag'] = this.etag;
    if (this.validators === 'weak-etag+date') Object.assign(headers, { ETag: `W/${this.etag}`, 'Last-Modified': this.lastModified });
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${this.content.length - 1}/${this.content.length}`;
    res.writeHead(status, headers);
    if (b.kind === 'serve' || b.kind === 'ignore-range') {
      entry.sent = body.length;
      return void res.end(body);
    }
    const part = body.subarray(0, b.bytes);
    entry.sent = part.length;
    res.write(part, () => {
      if (b.kind === 'drop') res.socket?.destroy();
      if (b.kind === 'short') res.socket?.end();
    });
    res.flushHeaders();
  }

  /** Range + If-Range as RFC 9110 has them (one `bytes=N-` range; a validator that differs means the whole content). */
  private range(req: http.IncomingMessage): { status: number; start: number } {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m === null) return { status: 200, start: 0 };
    const ifRange = req.headers['if-range'];
    const current = this.validators === 'etag' ? this.etag : this.validators === 'none' ? undefined : this.lastModified;
    if (ifRange !== undefined && ifRange !== current) return { status: 200, start: 0 };
    const start = Number(m[1]);
    if (start >= this.content.length) return { status: 416, start: 0 };
    return { status: 206, start };
  }
}

function etagOf(content: Buffer): string {
  return `"${createHash('sha1').update(content).digest('hex').slice(0, 16)}"`;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha512(data: Buffer): string {
  return createHash('sha512').update(data).digest('hex');
}
