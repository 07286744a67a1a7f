// The metricsAddr setting (agent/control/metrics.ts serves it): HOST:PORT of the Prometheus endpoint. Only a
// loopback address is taken unless metricsAllowRemote is set: the endpoint has no authentication and no TLS,
// and what it shows (worker names, master addresses, what runs) is for the machine's own scraper or a tunnel.

import net from 'node:net';

/** HOST:PORT, [IPv6]:PORT; port 0 picks a free port (its URL is in `bbagent status`). */
export function parseMetricsAddr(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):([0-9]{1,5})$/.exec(s);
  if (!m) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535 || (m[1] !== undefined && net.isIPv6(host) === false)) return undefined;
  return { host, port };
}

/** localhost, 127.0.0.0/8, ::1 (and ::ffff:127.x): addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

/** What is wrong with the metrics settings, or undefined. */
export function metricsAddrFault(config: { metricsAddr: string | null; metricsAllowRemote: boolean }): string | undefined {
  if (config.metricsAddr === null) return undefined;
  const addr = parseMetricsAddr(config.metricsAddr);
  if (addr === undefined) return `metricsAddr must be HOST:PORT (e.g. 127.0.0.1:9101), got ${JSON.stringify(config.metricsAddr)}`;
  if (!config.metricsAllowRemote && !isLoopbackHost(addr.host)) {
    return (
      `metricsAddr ${config.metricsAddr} is not a loopback address: the metrics endpoint has no authentication and no TLS, ` +
      `so it listens on 127.0.0.1, ::1 or localhost unless metricsAllowRemote is set (--metrics-allow-remote)`
    );
  }
  return undefined;
}
