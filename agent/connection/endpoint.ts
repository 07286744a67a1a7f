// Where the master is: host, port and TLS, from the config's host/port/useTls/tlsCaFile or from a
// Twisted-style connection string (tcp:host=H:port=P, tls:host=H:port=P[:trustRoots=DIR], or tcp:H:P).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { MasterEntry, Protocol, WorkerConfig } from '../config/schema.js';
import { endpointParts } from '../config/proxy.js';
import { AgentError } from '../errors.js';

export interface MasterEndpoint {
  host: string;
  port: number;
  tls: boolean;
  /** Extra trusted CA certificates (PEM), for masters with a self-signed CA. */
  ca: Buffer[] | undefined;
}

function readCa(file: string, what: string): Buffer[] {
  try {
    if (statSync(file).isDirectory()) {
      return readdirSync(file)
        .filter((f) => /\.(pem|crt)$/i.test(f))
        .map((f) => readFileSync(path.join(file, f)));
    }
    return [readFileSync(file)];
  } catch (err) {
    throw new AgentError('E_CONFIG', `${what}: cannot read CA certificates from ${file}: ${(err as Error).message}`);
  }
}

export function parseConnectionString(s: string, caFile: string | null): MasterEndpoint {
  const { kind, named, positional } = endpointParts(s);
  if (kind !== 'tcp' && kind !== 'tls') {
    throw new AgentError('E_CONFIG', `connectionString: only tcp: and tls: endpoints are supported, got ${JSON.stringify(s)}`);
  }
  const host = named['host'] ?? positional[0];
  const portText = named['port'] ?? positional[1];
  const port = Number(portText);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new AgentError('E_CONFIG', `connectionString: expected ${kind}:host=HOST:port=PORT, got ${JSON.stringify(s)}`);
  }
  const roots = named['trustRoots'] ?? caFile;
  return { host, port, tls: kind === 'tls', ca: roots ? readCa(roots, 'connectionString') : undefined };
}

/** One master of a worker's list, with the protocol spoken to it. */
export interface ListedMaster extends MasterEndpoint {
  protocol: Protocol;
}

/** The worker's masters in order: its `masters`, or the one master of masterHost/masterPort/connectionString. */
export function masterEndpoints(config: WorkerConfig): ListedMaster[] {
  if (config.masters.length === 0) return [{ ...masterEndpoint(config), protocol: config.protocol }];
  return config.masters.map((m: MasterEntry) => ({
    ...masterEndpoint({
      ...config,
      masterHost: m.host,
      masterPort: m.port,
      connectionString: m.connectionString ?? null,
      useTls: m.useTls ?? config.useTls,
      tlsCaFile: m.tlsCaFile === undefined ? config.tlsCaFile : m.tlsCaFile,
    }),
    protocol: m.protocol ?? config.protocol,
  }));
}

export function masterEndpoint(config: WorkerConfig): MasterEndpoint {
  if (config.connectionString) return parseConnectionString(config.connectionString, config.tlsCaFile);
  return {
    host: config.masterHost,
    port: config.masterPort,
    tls: config.useTls,
    ca: config.tlsCaFile ? readCa(config.tlsCaFile, 'tlsCaFile') : undefined,
  };
}
