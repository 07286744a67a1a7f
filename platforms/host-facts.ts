// Host facts, the other half of the Platform interface: what the OS is (for the worker info) and how it
// describes files (device numbers, owner names: what a tar header records).

/** Owner names for uids and gids, as Python's pwd and grp modules give them; read once per lookup table. */
export interface OwnerNames {
  /** pwd.getpwuid(uid).pw_name, or '' when the host knows no such user (or has no user database: Windows). */
  user(uid: number): string;
  /** grp.getgrgid(gid).gr_name, or '' when unknown. */
  group(gid: number): string;
}

export interface HostFacts {
  readonly id: 'linux' | 'darwin' | 'win32';
  /** Python's os.name: the master picks posix or nt path rules from it. */
  readonly osName: 'posix' | 'nt';
  /** Separator for PATH-like lists (os.pathsep). */
  readonly pathListSeparator: string;
  /** KEY -> value of the OS release description (os-release on Linux), lower-case keys without prefix. */
  osRelease(): Record<string, string>;
  /**
   * The OS product and its version for people reading the worker info ("Debian GNU/Linux" "12", "macOS" "14.5",
   * "Windows 10 Pro" "10.0.19045"). Read from files or the OS API, never by running a program.
   */
  osProduct(): { name: string; version: string };
  /**
   * [os.major(rdev), os.minor(rdev)] of a device file's st_rdev, in this OS's encoding of dev_t (glibc's on
   * Linux, major << 24 | minor on macOS); [0, 0] where Python has no os.major (Windows).
   */
  deviceNumbers(rdev: bigint): [number, number];
  /** A fresh lookup table of owner names (one per archive: the databases are read when first needed). */
  ownerNames(): OwnerNames;
}
