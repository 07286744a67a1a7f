// Signal names and numbers of this host.
import { constants } from 'node:os';

export const osConstants = { signals: constants.signals as Record<string, number> };

export function signalNumber(name: string): number | undefined {
  const n = name.startsWith('SIG') ? name : `SIG${name}`;
  return osConstants.signals[n];
}
