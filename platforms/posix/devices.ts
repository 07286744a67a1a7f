// Device numbers of POSIX systems: how each C library packs major and minor into dev_t (st_rdev), so that
// os.major / os.minor can be computed without calling them. Python's tarfile records both for device files.

/** glibc's gnu_dev_major / gnu_dev_minor (Linux): a 32-bit major and a 32-bit minor split over 64 bits. */
export function linuxDeviceNumbers(rdev: bigint): [number, number] {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return [Number(major), Number(minor)];
}

/** macOS's <sys/types.h> major() / minor(): a 32-bit dev_t of 8 bits of major above 24 bits of minor. */
export function darwinDeviceNumbers(rdev: bigint): [number, number] {
  return [Number((rdev >> 24n) & 0xffn), Number(rdev & 0xffffffn)];
}
