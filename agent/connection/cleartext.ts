// The start-up warning for a master reached without TLS over a real network: whoever answers at that address
// gets the worker password and can run commands on this host (docs/security.md).

import { isIP } from 'node:net';
import type { MasterEndpoint } from './endpoint.js';

/** Host names and addresses that never leave this machine (IPv4 127/8, IPv6 ::1 and its v4-mapped form). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) !== 6) return false;
  // The URL parser writes an IPv6 address in its shortest form (::ffff:127.0.0.1 becomes ::ffff:7f00:1).
  const canonical = new URL(`http://[${h}]/`).hostname;
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/** The one line to log at start when the master is reached in cleartext over a network; undefined otherwise. */
export function cleartextWarning(endpoint: Pick<MasterEndpoint, 'host' | 'port' | 'tls'>): string | undefined {
  if (endpoint.tls || isLoopbackHost(endpoint.host)) return undefined;
  return (
    `the master ${endpoint.host}:${endpoint.port} is reached without TLS: the worker password and every command and its output ` +
    `cross the network in cleartext, and whoever answers at that address can run commands here. ` +
    `Use TLS (--use-tls with --tls-ca-file CA.pem, or a tls: connection string) or a tunnel; see docs/security.md`
  );
}
