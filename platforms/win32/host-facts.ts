// Host facts on Windows: the product from the OS API; no device numbers and no owner names, as Python on
// Windows has neither os.major nor the pwd and grp modules (tarfile then leaves them 0 and empty).

import os from 'node:os';
import type { HostFacts, OwnerNames } from '../host-facts.js';

const NO_OWNER_NAMES: OwnerNames = { user: () => '', group: () => '' };

export function win32HostFacts(): HostFacts {
  return {
    id: 'win32',
    osName: 'nt',
    pathListSeparator: ';',
    osRelease: () => ({}),
    // os.version() is the edition from the registry ("Windows 10 Pro"), os.release() the build ("10.0.19045").
    osProduct: () => ({ name: os.version(), version: os.release() }),
    deviceNumbers: () => [0, 0],
    ownerNames: () => NO_OWNER_NAMES,
  };
}
