// The proxyConnectionString setting (connection/proxy.ts opens the tunnel): buildbot-worker takes a Twisted client
// endpoint string for the proxy (tcp:host=H:port=P); an http://[user:password@]host:port URL is read too, its
// user and password sent as Proxy-Authorization: Basic. Read here, with the config, so that a bad one is refused
// before the agent starts.

import { AgentError } from '../errors.js';

/**
 * A Twisted client endpoint string (`tcp:host=H:port=P`, `tcp:H:P`, `tls:...`) as its kind, its `name=value`
 * parts and its positional parts.
 */
export function endpointParts(s: string): { kind: string | undefined; named: Record<string, string>; positional: string[] } {
  const [kind, ...rest] = splitEndpoint(s);
  const named: Record<string, string> = {};
  const positional: string[] = [];
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq > 0) named[p.slice(0, eq)] = p.slice(eq + 1);
    else positional.push(p);
  }
  return { kind, named, positional };
}

/** Splits an endpoint string at unescaped ':' (Twisted escapes ':' in IPv6 addresses as '\:'). */
export function splitEndpoint(s: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && i + 1 < s.length) cur += s[++i];
    else if (s[i] === ':') {
      parts.push(cur);
      cur = '';
    } else cur += s[i];
  }
  parts.push(cur);
  return parts;
}

export interface ProxyEndpoint {
  host: string;
  port: number;
  /** The Proxy-Authorization header's value, or undefined (no credentials). */
  authorization: string | undefined;
}

function badProxy(s: string, why: string): AgentError {
  return new AgentError('E_CONFIG', `proxyConnectionString: ${why}, got ${JSON.stringify(s)}`);
}

function checkedPort(text: string | undefined, s: string): number {
  const port = Number(text);
  if (!text || !/^[0-9]+$/.test(text) || port < 1 || port > 65535) throw badProxy(s, 'expected a port from 1 to 65535');
  return port;
}

function fromUrl(s: string): ProxyEndpoint {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw badProxy(s, 'expected http://HOST:PORT or tcp:host=HOST:port=PORT');
  }
  if (url.protocol !== 'http:') throw badProxy(s, 'only http:// proxies (HTTP CONNECT) are supported');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw badProxy(s, 'the proxy host is empty');
  const port = url.port === '' ? 80 : checkedPort(url.port, s);
  const user = decodeURIComponent(url.username);
  const authorization = user || url.password ? `Basic ${Buffer.from(`${user}:${decodeURIComponent(url.password)}`).toString('base64')}` : undefined;
  return { host, port, authorization };
}

/** Reads `tcp:host=H:port=P`, `tcp:H:P` (Twisted's form, as buildbot-worker takes it) or `http://[user:pw@]H:P`. */
export function parseProxyConnectionString(s: string): ProxyEndpoint {
  if (/^https?:\/\//i.test(s)) return fromUrl(s);
  const { kind, named, positional } = endpointParts(s);
  if (kind === 'tls' || kind === 'ssl') throw badProxy(s, 'a proxy reached over TLS is not supported (use tcp: or http://)');
  if (kind !== 'tcp') throw badProxy(s, 'expected tcp:host=HOST:port=PORT or http://HOST:PORT');
  const host = named['host'] ?? positional[0];
  if (!host) throw badProxy(s, 'the proxy host is missing');
  return { host, port: checkedPort(named['port'] ?? positional[1], s), authorization: undefined };
}

/** Why `s` is not a proxy endpoint, or undefined when it is one. */
export function proxyProblem(s: string): string | undefined {
  try {
    parseProxyConnectionString(s);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
