import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { hostFacts } from '../../agent/worker/info.js';
import { parseOsRelease, parseSystemVersionPlist } from '../../platforms/posix/host-facts.js';
import type { Platform } from '../../platforms/types.js';

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
    const platform = { osProduct: () => ({ name: 'Windows 10 Pro', version: '10.0.19045' }) } as unknown as Platform;
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
