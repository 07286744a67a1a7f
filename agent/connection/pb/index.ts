// Perspective Broker over TCP or TLS, Buildbot's default worker protocol.

import type { Protocol } from '../protocol.js';
import { connectPb } from './connect.js';

export const protocol: Protocol = {
  connect: (e, worker, logger) =>
    connectPb(
      {
        host: e.host,
        port: e.port,
        name: e.name,
        password: e.password,
        keepaliveS: e.keepaliveS,
        keepaliveTimeoutS: e.keepaliveTimeoutS,
        handshakeTimeoutMs: e.handshakeTimeoutMs,
        ...(e.tls ? { tls: e.ca ? { ca: e.ca } : {} } : {}),
        ...(e.proxy ? { proxy: e.proxy } : {}),
      },
      worker,
      logger,
    ),
};
