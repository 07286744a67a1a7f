// Free TCP port helper for integration tests: ask the kernel for a free port by binding port 0.
// The port is released before it is returned, so another process may grab it in between; callers that
// can detect a lost race (BuildbotMaster does) retry with fresh ports.
import net from 'node:net';

/** Binds port 0 on `host`, reads the port the kernel chose, closes the socket and returns the port. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, host);
  if (port === undefined) throw new Error('freePorts(1) returned nothing');
  return port;
}

/**
 * Returns `count` distinct free ports. All sockets stay open until every port is known, so the kernel
 * cannot hand out the same port twice within one call.
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      ports.push(await listenOnZero(server, host));
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function listenOnZero(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error(`unexpected server address ${String(address)}`));
        return;
      }
      resolve(address.port);
    });
  });
}
