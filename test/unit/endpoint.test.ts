import { describe, expect, it } from 'vitest';
import { parseConnectionString } from '../../agent/connection/endpoint.js';

describe('parseConnectionString', () => {
  it('reads Twisted client endpoint strings', () => {
    expect(parseConnectionString('tcp:host=m.example:port=9989', null)).toEqual({ host: 'm.example', port: 9989, tls: false, ca: undefined });
    expect(parseConnectionString('tls:m:9989', null)).toMatchObject({ host: 'm', port: 9989, tls: true });
    expect(parseConnectionString('tcp:host=\\:\\:1:port=1', null)).toMatchObject({ host: '::1', port: 1 });
  });
  it('refuses what it cannot use, naming it', () => {
    expect(() => parseConnectionString('unix:/x', null)).toThrow(/only tcp: and tls:/);
    expect(() => parseConnectionString('tcp:host=m', null)).toThrow(/expected tcp:host=HOST:port=PORT/);
    expect(() => parseConnectionString('tls:host=m:port=1:trustRoots=/nonexistent', null)).toThrow(/cannot read CA certificates from \/nonexistent/);
  });
});
