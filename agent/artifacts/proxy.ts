// Which proxy a fetch goes through, from an injected environment (never process.env here): https_proxy /
// HTTPS_PROXY for https URLs, http_proxy / HTTP_PROXY for http, all_proxy / ALL_PROXY for both, lower case
// first as curl reads them; no_proxy / NO_PROXY lists the hosts that go direct.
//
// NO_PROXY follows curl (lib/noproxy.c): entries separated by commas or white space; `*` alone matches every
// host; a leading dot is ignored, so `example.com` and `.example.com` both match example.com and any name
// below it (a.example.com) but not badexample.com; names compare case-insensitively, a trailing dot of the
// host is ignored; an IP address matches only the same address, and `10.0.0.0/8` or `fd00::/8` (CIDR, curl
// 7.86) match the addresses inside. One extension, as Go's httpproxy has it: `host:port` (`[::1]:8080`) matches
// that host on that port only. Like curl, loopback is not bypassed unless listed.

import net from 'node:net';
import { AgentError } from '../errors.js';

/** The environment a fetch reads its proxy settings from (the agent passes its own, tests a literal). */
export type ProxyEnv = Readonly<Record<string, string | undefined>>;

/** A proxy to use: where it listens, and the Proxy-Authorization header when its URL carries a user. */
export interface Proxy {
  url: URL;
  host: string;
  port: number;
  authorization?: string;
}

function lookup(env: ProxyEnv, name: string): string | undefined {
  const v = env[name.toLowerCase()] ?? env[name.toUpperCase()];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** The proxy for `target`, or undefined to connect directly. Throws E_FETCH_PROXY for a proxy URL we cannot use. */
export function proxyFor(target: URL, env: ProxyEnv): Proxy | undefined {
  const noProxy = lookup(env, 'no_proxy');
  if (noProxy !== undefined && bypassesProxy(target, noProxy)) return undefined;
  const scheme = target.protocol === 'https:' ? 'https_proxy' : 'http_proxy';
  const raw = lookup(env, scheme) ?? lookup(env, 'all_proxy');
  return raw === undefined ? undefined : parseProxy(raw);
}

/** A proxy setting: `host:port` or `http://[user:password@]host[:port]` (port 80 when missing). */
export function parseProxy(raw: string): Proxy {
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw new AgentError('E_FETCH_PROXY', `cannot parse the proxy setting '${raw}'`);
  }
  if (url.protocol !== 'http:') throw new AgentError('E_FETCH_PROXY', `proxy '${raw}': only http:// proxies are supported`);
  const proxy: Proxy = { url, host: unbracket(url.hostname), port: url.port === '' ? 80 : Number(url.port) };
  if (url.username !== '' || url.password !== '') {
    const creds = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    proxy.authorization = `Basic ${Buffer.from(creds).toString('base64')}`;
  }
  return proxy;
}

/** `[::1]` -> `::1` (URL keeps the brackets of an IPv6 host; sockets and address checks want it bare). */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** The port `target` connects to (the scheme's default when the URL has none). */
export function portOf(target: URL): number {
  if (target.port !== '') return Number(target.port);
  return target.protocol === 'https:' ? 443 : 80;
}

/** Whether NO_PROXY's `list` sends `target` direct (rules in the opening comment). */
export function bypassesProxy(target: URL, list: string): boolean {
  const host = unbracket(target.hostname).toLowerCase().replace(/\.$/, '');
  const port = portOf(target);
  for (const entry of list.split(/[\s,]+/)) {
    if (entry === '') continue;
    if (entry === '*') return true;
    if (matchesEntry(host, port, entry.toLowerCase())) return true;
  }
  return false;
}

function matchesEntry(host: string, port: number, entry: string): boolean {
  let name = entry;
  let entryPort: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(name);
  if (bracketed) {
    name = bracketed[1]!;
    if (bracketed[2] !== undefined) entryPort = Number(bracketed[2]);
  } else {
    const withPort = /^([^:]+):(\d+)$/.exec(name); // one colon: host:port (a bare IPv6 address has several)
    if (withPort) {
      name = withPort[1]!;
      entryPort = Number(withPort[2]);
    }
  }
  if (entryPort !== undefined && entryPort !== port) return false;
  if (name.includes('/')) return inCidr(host, name);
  name = name.replace(/^\./, '').replace(/\.$/, '');
  if (name === '') return false;
  if (net.isIP(host) !== 0 || net.isIP(name) !== 0) return sameAddress(host, name);
  return host === name || host.endsWith(`.${name}`);
}

function sameAddress(a: string, b: string): boolean {
  const fa = net.isIP(a);
  if (fa === 0 || fa !== net.isIP(b)) return false;
  const list = new net.BlockList();
  list.addAddress(b, fa === 4 ? 'ipv4' : 'ipv6');
  return list.check(a, fa === 4 ? 'ipv4' : 'ipv6');
}

function inCidr(host: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const family = net.isIP(host);
  if (family === 0 || base === undefined || bits === undefined || !/^\d+$/.test(bits) || net.isIP(base) !== family) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const prefix = Number(bits);
  if (prefix > (family === 4 ? 32 : 128)) return false;
  const list = new net.BlockList();
  list.addSubnet(base, prefix, type);
  return list.check(host, type);
}
