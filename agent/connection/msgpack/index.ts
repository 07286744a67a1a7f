// The msgpack-over-WebSocket worker protocol (Buildbot's `protocol={'msgpack_experimental_v7': ...}`).

import type { Protocol } from '../protocol.js';
import { connectMsgpack } from './connect.js';
import { MsgpackSession } from './session.js';

export const protocol: Protocol = {
  connect: (e, worker, logger) =>
    connectMsgpack(e, (ws, socket) => {
      worker.resetSettings();
      if (ws.extensions) logger.info(`websocket extensions: ${ws.extensions}`);
      return new MsgpackSession(ws, worker, logger, {
        leanUpdates: e.leanUpdates,
        keepaliveS: e.keepaliveS,
        keepaliveTimeoutS: e.keepaliveTimeoutS,
        socket,
      });
    }),
};
