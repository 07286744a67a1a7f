// A loopback TCP proxy between the agent and the master whose links can be cut on demand (both sockets
// destroyed at once, as a dead link or a killed peer looks to the agent); new connections keep passing.

import net from 'node:net';

type Link = [net.Socket, net.Socket];

export class CuttableProxy {
  private readonly links = new Set<Link>();
  private readonly server: net.Server;

  private constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => this.forward(client));
  }

  /** Listens on 127.0.0.1 (a free port) and forwards every connection to 127.0.0.1:`targetPort`. */
  static async start(targetPort: number): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Destroys every current connection (the listener stays: the agent can reconnect). */
  cut(): void {
    for (const [a, b] of this.links) {
      a.destroy();
      b.destroy();
    }
    this.links.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const link: Link = [client, upstream];
    this.links.add(link);
    const close = (): void => {
      this.links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    for (const s of link) {
      s.on('error', close);
      s.on('close', close);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
