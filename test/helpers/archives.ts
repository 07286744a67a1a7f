// Real trees and the archives the real `tar` and `zip` programs make of them, for the extraction tests; plus
// hostile archives made with Python's tarfile/zipfile where the programs refuse to write them.
import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Runs a program; throws with its stderr when it fails. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): void {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.error?.message ?? ''}`);
}

/** Longer than ustar's 100 + 155 bytes: GNU tar needs its long-name members, pax its extended headers. */
const LONG_DIR = `${'d'.repeat(90)}/${'e'.repeat(90)}`;

/** A fixed old mtime (seconds), so a test sees that mtimes come from the archive and not from now. */
export const OLD_MTIME = 1_500_000_000;

/**
 * A tree with what archives carry: modes (0644, 0755, 0600, 0444, a 0750 directory), a setuid file, symlinks to a
 * file, to a directory and up one level inside the tree, a hardlink pair, an empty directory, unicode names, a
 * path too long for ustar, and a 1 MiB file of varied bytes. Returns `root`.
 */
export function makeTree(root: string): string {
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  mkdirSync(path.join(root, 'lib', 'deep', 'deeper'), { recursive: true });
  mkdirSync(path.join(root, 'empty'));
  mkdirSync(path.join(root, 'private'), { mode: 0o750 });
  mkdirSync(path.join(root, 'données', '日本語'), { recursive: true });
  mkdirSync(path.join(root, LONG_DIR), { recursive: true });
  const files: [string, string | Buffer, number][] = [
    ['README.md', 'hello\n', 0o644],
    ['bin/run.sh', '#!/bin/sh\necho run\n', 0o755],
    ['bin/suid', 'not really setuid\n', 0o4755],
    ['lib/secret.key', 'k3y\n', 0o600],
    ['lib/readonly.txt', 'ro\n', 0o444],
    ['lib/deep/deeper/leaf.txt', 'leaf\n', 0o644],
    ['private/p.txt', 'p\n', 0o640],
    ['données/日本語/ファイル名.txt', 'ユニコード\n', 0o644],
    ['with space.txt', 'space\n', 0o644],
    ['big.bin', Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7919) % 251)), 0o644],
    ['empty.txt', '', 0o644],
    [`${LONG_DIR}/${'n'.repeat(120)}.txt`, 'a long name\n', 0o644],
  ];
  for (const [name, data, mode] of files) {
    const p = path.join(root, name);
    writeFileSync(p, data);
    chmodSync(p, mode);
  }
  symlinkSync('README.md', path.join(root, 'link-to-readme'));
  symlinkSync('lib/deep', path.join(root, 'link-to-dir'));
  symlinkSync('../README.md', path.join(root, 'lib', 'up-link'));
  linkSync(path.join(root, 'lib', 'deep', 'deeper', 'leaf.txt'), path.join(root, 'lib', 'hard-leaf.txt'));
  // old mtimes everywhere, directories last (writing into a directory changes its mtime)
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      if (!st.isSymbolicLink()) utimesSync(p, OLD_MTIME, OLD_MTIME);
    }
  };
  walk(root);
  utimesSync(root, OLD_MTIME, OLD_MTIME);
  return root;
}

export interface TreeEntry {
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
  /** whole seconds */
  mtime: number;
  content?: string;
  target?: string;
  ino: number;
}

/** Every entry under `root` by relative path (symlinks not followed). */
export function describeTree(root: string): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      const base = { mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000), ino: st.ino };
      if (st.isSymbolicLink()) out.set(r, { ...base, kind: 'symlink', target: readlinkSync(p) });
      else if (st.isDirectory()) {
        out.set(r, { ...base, kind: 'dir' });
        walk(p, r);
      } else out.set(r, { ...base, kind: 'file', content: readFileSync(p).toString('base64') });
    }
  };
  walk(root, '');
  return out;
}

/** Runs Python code (argv[1:] = `args`). */
export function python(code: string, args: string[]): void {
  run('python3', ['-c', code, ...args]);
}

/**
 * A tar written by Python's tarfile from a JSON list of members: {name, type: file|dir|symlink|hardlink|chr|fifo,
 * data?, target?}. For the hostile archives GNU tar will not write.
 */
export function pyTar(out: string, members: object[]): void {
  python(
    `
import io, json, sys, tarfile
kinds = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE, 'chr': tarfile.CHRTYPE, 'fifo': tarfile.FIFOTYPE, 'sparse': tarfile.GNUTYPE_SPARSE}
with tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT) as t:
    for m in json.loads(sys.argv[2]):
        i = tarfile.TarInfo(m['name'])
        i.type = kinds[m.get('type', 'file')]
        i.mode = m.get('mode', 0o644)
        i.linkname = m.get('target', '')
        data = m.get('data', '').encode()
        i.size = len(data) if i.type == tarfile.REGTYPE else 0
        t.addfile(i, io.BytesIO(data) if i.size else None)
`,
    [out, JSON.stringify(members)],
  );
}

/** A zip written by Python's zipfile: {name, data?, symlink?: target} (symlinks with Unix mode 0o120777). */
export function pyZip(out: string, members: object[]): void {
  python(
    `
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for m in json.loads(sys.argv[2]):
        i = zipfile.ZipInfo(m['name'])
        i.create_system = 3
        if 'symlink' in m:
            i.external_attr = (0o120777 << 16)
            z.writestr(i, m['symlink'])
        else:
            i.external_attr = (0o100644 << 16)
            z.writestr(i, m.get('data', ''))
`,
    [out, JSON.stringify(members)],
  );
}
