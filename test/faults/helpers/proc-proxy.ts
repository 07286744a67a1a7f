// A loopback TCP proxy between an agent and its master whose live connections a test can cut at once (both
// sides see the link drop, as when a cable is pulled and the peer's RST arrives); new connections still pass.
import net from 'node:net';

export class CuttableProxy {
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;

  private constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => this.forward(client));
  }

  /** Listens on 127.0.0.1 (port 0) and forwards every connection to 127.0.0.1:`targetPort`. */
  static async start(targetPort: number): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private forward(client: net.Socket): void {
    const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort });
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Drops every live connection (with a RST); returns how many sockets were cut. */
  cut(): number {
    const n = this.sockets.size;
    for (const s of [...this.sockets]) s.resetAndDestroy();
    return n;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
