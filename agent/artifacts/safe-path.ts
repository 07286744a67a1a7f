// Member names and link targets of an archive, checked before anything touches the disk: a name becomes a list of
// plain components under the extraction root, or the reason it is refused. Pure functions, no file system.
//
// Rules (the same for tar and zip, on every OS, so an archive is accepted or refused alike everywhere):
// - `\` counts as a separator like `/`: Windows reads it so, and a zip made on Windows uses it.
// - Refused: a NUL byte; an absolute name (`/x`, `\x`, `\\server\x`, `C:\x`, `C:x`); any `..` component.
// - `.` components and empty ones (`a//b`, `./a`, `a/`) are dropped.

/** A member name split into safe components, or why it is refused. */
export type SafeName = { ok: true; parts: string[] } | { ok: false; reason: string };

const SEPARATORS = /[\\/]/;
const DRIVE = /^[A-Za-z]:/;

/** Why `name` is absolute (POSIX, UNC or a Windows drive), or null when it is relative. */
function absoluteReason(name: string): string | null {
  if (name.startsWith('\\\\') || name.startsWith('//')) return 'absolute path (UNC)';
  if (name.startsWith('/') || name.startsWith('\\')) return 'absolute path';
  if (DRIVE.test(name)) return 'absolute path (drive letter)';
  return null;
}

/** Splits a relative path into components, dropping `.` and empty ones; null when a `..` is present. */
function plainParts(name: string): string[] | null {
  const parts: string[] = [];
  for (const part of name.split(SEPARATORS)) {
    if (part === '' || part === '.') continue;
    if (part === '..') return null;
    parts.push(part);
  }
  return parts;
}

/** Checks a member name; `[]` parts means the root itself (`./`). */
export function safeMemberName(name: string): SafeName {
  if (name.includes('\0')) return { ok: false, reason: 'NUL byte in the name' };
  const abs = absoluteReason(name);
  if (abs) return { ok: false, reason: abs };
  const parts = plainParts(name);
  if (!parts) return { ok: false, reason: "'..' component in the name" };
  return { ok: true, parts };
}

/**
 * Resolves a symlink's target lexically from the directory holding the link (`linkParts` without its last
 * component). Returns the components the target names under the root, or why it leaves the root.
 */
export function resolveLinkTarget(linkParts: readonly string[], target: string): SafeName {
  if (target === '') return { ok: false, reason: 'empty symlink target' };
  if (target.includes('\0')) return { ok: false, reason: 'NUL byte in the symlink target' };
  const abs = absoluteReason(target);
  if (abs) return { ok: false, reason: `symlink target '${target}' is an ${abs}` };
  const stack = linkParts.slice(0, -1);
  for (const part of target.split(SEPARATORS)) {
    if (part === '' || part === '.') continue;
    if (part !== '..') stack.push(part);
    else if (stack.pop() === undefined) return { ok: false, reason: `symlink target '${target}' leaves the extraction root` };
  }
  return { ok: true, parts: stack };
}

/** The key of a path in the extraction model. */
export function pathKey(parts: readonly string[]): string {
  return parts.join('/');
}

/**
 * The folded form of a path: names one file system may treat as one file. Case-insensitive and
 * normalization-insensitive systems (macOS, Windows) make `A` and `a`, or NFC and NFD spellings, one name;
 * Windows also drops trailing dots and spaces (`l. ` is `l`).
 */
export function foldedKey(parts: readonly string[]): string {
  return parts
    .map((p) =>
      p
        .normalize('NFC')
        .toLowerCase()
        .replace(/[. ]+$/, ''),
    )
    .join('/');
}
