// Extraction of node-pty from the single executable: integrity checks, atomic placement, races between two
// processes, the per-user cache location, and recognising node-pty's fork of its helper script.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMPLETE_MARKER, ExtractError, extractAssets, manifestHash, nodePtyForkTarget, userCacheDir, type AssetManifest } from '../../platforms/sea/index.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function bundleOf(files: Record<string, { data: string; mode: number }>): { manifest: AssetManifest; read: (a: string) => Buffer; reads: string[] } {
  const entries = Object.entries(files).map(([p, f]) => ({ path: p, asset: `node-pty/${p}`, mode: f.mode, sha256: sha(Buffer.from(f.data)) }));
  const reads: string[] = [];
  const read = (asset: string): Buffer => {
    reads.push(asset);
    const f = files[asset.slice('node-pty/'.length)];
    if (!f) throw new Error(`no asset ${asset}`);
    return Buffer.from(f.data);
  };
  return { manifest: { name: 'node-pty', version: '1.1.0', hash: manifestHash(entries), files: entries }, read, reads };
}

const FILES = {
  'package.json': { data: '{"name":"node-pty"}', mode: 0o644 },
  'lib/index.js': { data: 'module.exports = 1;', mode: 0o644 },
  'prebuilds/darwin-arm64/spawn-helper': { data: '\x7fELF...', mode: 0o755 },
};

describe('extractAssets', () => {
  it('writes every file with its mode and a completion marker, once', () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'bbagent-sea-'));
    const b = bundleOf(FILES);
    const dir = extractAssets(b.manifest, b.read, cache);
    expect(path.basename(dir)).toMatch(/^node-pty-1\.1\.0-[0-9a-f]{16}$/);
    expect(readFileSync(path.join(dir, 'lib/index.js'), 'utf8')).toBe('module.exports = 1;');
    expect(statSync(path.join(dir, 'prebuilds/darwin-arm64/spawn-helper')).mode & 0o777).toBe(0o755);
    expect(existsSync(path.join(dir, COMPLETE_MARKER))).toBe(true);
    expect(statSync(cache).mode & 0o077).toBe(0); // private: native code is loaded from here
    const reads = b.reads.length;
    expect(extractAssets(b.manifest, b.read, cache)).toBe(dir);
    expect(b.reads.length).toBe(reads); // found complete: nothing read again
    expect(readdirSync(cache)).toEqual([path.basename(dir)]); // no temporary directory left
  });

  it('a different build gets its own directory', () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'bbagent-sea-'));
    const a = bundleOf(FILES);
    const b = bundleOf({ ...FILES, 'lib/index.js': { data: 'module.exports = 2;', mode: 0o644 } });
    expect(extractAssets(a.manifest, a.read, cache)).not.toBe(extractAssets(b.manifest, b.read, cache));
  });

  it('refuses a corrupt file and leaves nothing behind', () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'bbagent-sea-'));
    const b = bundleOf(FILES);
    const corrupt = (asset: string): Buffer => (asset.endsWith('index.js') ? Buffer.from('tampered') : b.read(asset));
    expect(() => extractAssets(b.manifest, corrupt, cache)).toThrow(/lib\/index.js is corrupt/);
    expect(readdirSync(cache)).toEqual([]);
  });

  it('refuses an inconsistent manifest and paths that leave the directory', () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'bbagent-sea-'));
    const b = bundleOf(FILES);
    expect(() => extractAssets({ ...b.manifest, hash: '0'.repeat(64) }, b.read, cache)).toThrow(ExtractError);
    const evil = bundleOf({ '../evil.js': { data: 'x', mode: 0o644 } });
    expect(() => extractAssets(evil.manifest, evil.read, cache)).toThrow(/escapes the extraction directory/);
  });

  it('when another process finishes first, uses its copy', () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'bbagent-sea-'));
    const b = bundleOf(FILES);
    let raced = false;
    const racing = (asset: string): Buffer => {
      if (!raced) {
        raced = true;
        extractAssets(b.manifest, b.read, cache); // the other process, start to finish, in between
      }
      return b.read(asset);
    };
    const dir = extractAssets(b.manifest, racing, cache);
    expect(existsSync(path.join(dir, COMPLETE_MARKER))).toBe(true);
    expect(readdirSync(cache)).toEqual([path.basename(dir)]);
  });
});

describe('userCacheDir', () => {
  it('follows the override, systemd, then each OS convention', () => {
    expect(userCacheDir({ BBAGENT_CACHE_DIR: '/x' }, 'linux', '/home/a')).toBe('/x');
    expect(userCacheDir({ CACHE_DIRECTORY: '/var/cache/bbagent-w1:/other' }, 'linux', '/home/a')).toBe('/var/cache/bbagent-w1/sea');
    expect(userCacheDir({}, 'linux', '/home/a')).toBe('/home/a/.cache/bbagent');
    expect(userCacheDir({ XDG_CACHE_HOME: '/xdg' }, 'linux', '/home/a')).toBe('/xdg/bbagent');
    expect(userCacheDir({}, 'darwin', '/Users/a')).toBe('/Users/a/Library/Caches/bbagent');
    expect(userCacheDir({ LOCALAPPDATA: 'C:\\Users\\a\\AppData\\Local' }, 'win32', 'C:\\Users\\a')).toBe('C:\\Users\\a\\AppData\\Local\\bbagent\\cache');
  });
});

describe('nodePtyForkTarget', () => {
  const ptyDir = '/cache/node-pty-1.1.0-abc';
  const script = `${ptyDir}/lib/conpty_console_list_agent`;
  it("recognises node-pty's fork of its console-list agent (argv[1] repeats the executable in a SEA)", () => {
    expect(nodePtyForkTarget(['/bin/bbagent', '/bin/bbagent', script, '1234'], true, ptyDir)).toBe(script);
    expect(nodePtyForkTarget(['/bin/bbagent', '/bin/bbagent', `${script}.js`, '1234'], true, ptyDir)).toBe(`${script}.js`);
  });
  it('ignores everything else', () => {
    expect(nodePtyForkTarget(['/bin/bbagent', '/bin/bbagent', script], false, ptyDir)).toBeUndefined(); // no IPC channel
    expect(nodePtyForkTarget(['/bin/bbagent', '/bin/bbagent', 'start', '--nodaemon'], true, ptyDir)).toBeUndefined();
    expect(nodePtyForkTarget(['/bin/bbagent', '/bin/bbagent', '/tmp/conpty_console_list_agent.js'], true, ptyDir)).toBeUndefined();
    expect(nodePtyForkTarget(['/bin/bbagent', '/bin/bbagent', script], true, undefined)).toBeUndefined();
  });
});
