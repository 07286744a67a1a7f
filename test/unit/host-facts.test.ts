import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { hostFacts } from '../../agent/worker/info.js';
import { linuxDeviceNumbers } from '../../platforms/posix/devices.js';
import { parseOsRelease, parseSystemVersionPlist } from '../../platforms/posix/host-facts.js';
import { parseAccountFile, posixOwnerNames } from '../../platforms/posix/owners.js';
import { posixPlatform } from '../../platforms/posix/platform.js';
import type { HostFacts } from '../../platforms/types.js';
import { win32Platform } from '../../platforms/win32/platform.js';

// A real macOS 14 SystemVersion.plist (what `sw_vers` reads).
const SONOMA = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>BuildID</key>
	<string>4D3C1E52-6E5B-11EE-A9C4-D2C8E1A24D1E</string>
	<key>ProductBuildVersion</key>
	<string>23B81</string>
	<key>ProductCopyright</key>
	<string>1983-2023 Apple Inc.</string>
	<key>ProductName</key>
	<string>macOS</string>
	<key>ProductUserVisibleVersion</key>
	<string>14.1.1</string>
	<key>ProductVersion</key>
	<string>14.1.1</string>
	<key>iOSSupportVersion</key>
	<string>17.1</string>
</dict>
</plist>
`;

describe('host facts', () => {
  it('reads the macOS product from SystemVersion.plist', () => {
    expect(parseSystemVersionPlist(SONOMA)).toEqual({ name: 'macOS', version: '14.1.1' });
    expect(parseSystemVersionPlist('<plist><dict></dict></plist>')).toBeUndefined();
    expect(parseSystemVersionPlist('<key>ProductName</key>\n  <string>Mac OS X</string>')).toEqual({ name: 'Mac OS X', version: '' });
  });

  it('parses os-release as buildbot-worker does', () => {
    expect(parseOsRelease('NAME="Debian GNU/Linux"\nVERSION_ID="12"\n# c\nEMPTY=\nID=debian\n')).toEqual({
      name: 'Debian GNU/Linux',
      version_id: '12',
      id: 'debian',
    });
  });

  it('builds the bbagent_* keys from the platform and node:os, strings and numbers only', () => {
    const platform = { osProduct: () => ({ name: 'Windows 10 Pro', version: '10.0.19045' }) } as unknown as HostFacts;
    const facts = hostFacts(platform);
    expect(facts).toEqual({
      bbagent_os_distro: 'Windows 10 Pro',
      bbagent_os_release: '10.0.19045',
      bbagent_os_kernel: os.release(),
      bbagent_arch: os.arch(),
      bbagent_cpu_model: os.cpus()[0]!.model.trim(),
      bbagent_cpu_cores: os.availableParallelism(),
      bbagent_mem_total: os.totalmem(),
      bbagent_agent: 'bbagent',
    });
  });
});

describe('device numbers (os.major / os.minor of st_rdev)', () => {
  it("Linux: glibc's encoding, small and large numbers (the values os.major/os.minor give on Linux)", () => {
    const linux = posixPlatform('linux');
    expect(linux.deviceNumbers(259n)).toEqual([1, 3]); // /dev/null
    expect(linux.deviceNumbers(66305n)).toEqual([259, 1]); // nvme0n1p1: a major above 255
    expect(linux.deviceNumbers(1051180n)).toEqual([10, 300]); // a minor above 255
    expect(linux.deviceNumbers(17596481011712n)).toEqual([4096, 1048576]); // the high halves (os.makedev(4096, 1 << 20))
  });

  it("macOS: the 32-bit dev_t of <sys/types.h>, major << 24 | minor (glibc's decoding got both wrong)", () => {
    const darwin = posixPlatform('darwin');
    // /dev/null on macOS is 3,2; /dev/disk0s1 is 1,1; /dev/ttys003 is 16,3
    expect(darwin.deviceNumbers(0x03000002n)).toEqual([3, 2]);
    expect(darwin.deviceNumbers(0x01000001n)).toEqual([1, 1]);
    expect(darwin.deviceNumbers(0x10000003n)).toEqual([16, 3]);
    expect(darwin.deviceNumbers(0x18ffffffn)).toEqual([24, 0xffffff]); // a 24-bit minor
    // what the glibc decoding (used on every POSIX system before) made of macOS's /dev/null
    expect(linuxDeviceNumbers(0x03000002n)).toEqual([0, 12290]);
  });

  it('Windows: none (Python on Windows has no os.major: tarfile leaves 0, 0)', () => {
    expect(win32Platform().deviceNumbers(259n)).toEqual([0, 0]);
  });
});

describe('owner names (pwd.getpwuid / grp.getgrgid)', () => {
  const PASSWD = 'root:x:0:0:root:/root:/bin/bash\n# a comment\nbad line\nbuild:x:1000:1000::/home/build:/bin/sh\ndup:x:1000:1000::/:/bin/sh\nnoid:x::1:/:\n';
  const GROUP = 'root:x:0:\nstaff:*:20:root\n';

  it('parses passwd and group files; the first entry of an id wins, as getpwuid returns it', () => {
    expect([...parseAccountFile(PASSWD)]).toEqual([
      [0, 'root'],
      [1000, 'build'],
    ]);
    expect([...parseAccountFile(GROUP)]).toEqual([
      [0, 'root'],
      [20, 'staff'],
    ]);
  });

  it("reads each database once, and names this process's own account where the files do not (macOS, NSS)", () => {
    const reads: string[] = [];
    const names = posixOwnerNames({
      readFile: (p) => (reads.push(p), p === '/etc/passwd' ? PASSWD : GROUP),
      self: () => ({ uid: 501, username: 'alice' }),
    });
    expect([names.user(0), names.user(1000), names.user(501), names.user(502), names.user(1000)]).toEqual(['root', 'build', 'alice', '', 'build']);
    expect([names.group(20), names.group(501)]).toEqual(['staff', '']);
    expect(reads).toEqual(['/etc/passwd', '/etc/group']);
  });

  it('without the databases or an own account, names are empty (no error)', () => {
    const names = posixOwnerNames({
      readFile: () => {
        throw new Error('ENOENT');
      },
      self: () => {
        throw new Error('no passwd entry');
      },
    });
    expect([names.user(0), names.group(0)]).toEqual(['', '']);
  });

  it('the real host: this process owns what it creates, named as Python names it', () => {
    if (process.platform === 'win32') return;
    const names = posixPlatform('linux').ownerNames();
    expect(names.user(process.getuid!())).toBe(os.userInfo().username);
  });

  it('Windows: no names (Python on Windows has no pwd or grp module)', () => {
    const names = win32Platform().ownerNames();
    expect([names.user(0), names.group(0)]).toEqual(['', '']);
  });
});
