// An in-test TCP proxy on loopback between an agent and its master, for network faults: it passes traffic, or
// blackholes it (both directions silently dropped, both sockets left open: a half-open link, as after a NAT
// entry timed out or a cable was pulled), or cuts it (both sockets reset). It can also record what the master
// sent, for the protocol fuzz's corpus.
import net from 'node:net';

export type LinkState = 'pass' | 'blackhole' | 'cut';

export class ProxyLink {
  state: LinkState = 'pass';
  /** Bytes from the master, in order (only when the proxy records). */
  readonly fromMaster: Buffer[] = [];
  readonly opened = Date.now();
  /** Set once the agent's side closed (the agent dropped the connection or went away). */
  agentClosedAt: number | undefined;

  constructor(
    readonly agent: net.Socket,
    readonly master: net.Socket,
    private readonly record: boolean,
  ) {
    const forward = (from: net.Socket, to: net.Socket, fromMaster: boolean): void => {
      from.on('data', (chunk: Buffer) => {
        // a blackholed link reads and drops, so neither side's writes ever block or fail
        if (this.state !== 'pass') return;
        if (fromMaster && this.record) this.fromMaster.push(chunk);
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
      from.on('end', () => {
        if (this.state === 'pass') to.end();
      });
      from.on('close', () => {
        if (!fromMaster) this.agentClosedAt = Date.now();
        // half-open: the master never learns that the agent went away, nor the agent the master
        if (this.state === 'pass' || this.state === 'cut') to.destroy();
      });
      from.on('error', () => {});
    };
    forward(agent, master, false);
    forward(master, agent, true);
  }

  blackhole(): void {
    if (this.state === 'pass') this.state = 'blackhole';
  }

  cut(): void {
    this.state = 'cut';
    this.agent.resetAndDestroy();
    this.master.resetAndDestroy();
  }

  destroy(): void {
    this.agent.destroy();
    this.master.destroy();
  }
}

export class FaultProxy {
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    /** Every connection made through the proxy, in order. */
    readonly links: ProxyLink[],
    private readonly waiters: (() => void)[],
  ) {}

  /** Listens on 127.0.0.1 (a free port) and forwards every connection to `target` on 127.0.0.1. */
  static async start(targetPort: number, opts: { record?: boolean } = {}): Promise<FaultProxy> {
    const links: ProxyLink[] = [];
    const waiters: (() => void)[] = [];
    const server = net.createServer((agent) => {
      agent.pause();
      const master = net.connect({ host: '127.0.0.1', port: targetPort });
      master.on('error', () => agent.destroy());
      master.once('connect', () => {
        const link = new ProxyLink(agent, master, opts.record ?? false);
        links.push(link);
        agent.resume();
        waiters.splice(0).forEach((w) => w());
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: 0, host: '127.0.0.1' }, () => resolve());
    });
    return new FaultProxy(server, (server.address() as net.AddressInfo).port, links, waiters);
  }

  /** Cuts every link open now (both sockets reset, as when a cable is pulled and the peer's RST arrives); later
   * connections pass. Returns how many links were cut. */
  cutAll(): number {
    const open = this.links.filter((l) => l.state === 'pass' && !l.agent.destroyed);
    for (const l of open) l.cut();
    return open.length;
  }

  /** Blackholes every link open now; later connections pass. */
  blackholeAll(): void {
    for (const l of this.links) l.blackhole();
  }

  /** Resolves once at least `n` links were opened in total. */
  async waitForLinks(n: number, timeoutMs: number): Promise<ProxyLink> {
    const deadline = Date.now() + timeoutMs;
    while (this.links.length < n) {
      if (Date.now() > deadline) throw new Error(`proxy on port ${this.port}: ${this.links.length} connections after ${timeoutMs} ms, expected ${n}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return this.links[n - 1]!;
  }

  async close(): Promise<void> {
    for (const l of this.links) l.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
