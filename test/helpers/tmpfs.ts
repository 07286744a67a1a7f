// A small tmpfs, the real ENOSPC source of the fault and unit tests: mounting needs root with CAP_SYS_ADMIN (as in
// CI); tests that need one skip with the reason where it is not allowed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, as in CI); the reason when not. */
export function tmpfsSupport(): { ok: true } | { ok: false; why: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return { ok: true };
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return { ok: false, why: `mount -t tmpfs is not allowed here (${stderr || (err as Error).message})` };
  } finally {
    rmdirSync(dir);
  }
}

export function mountTmpfs(dir: string, sizeBytes: number): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'pipe' });
}

export function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' }); // busy: detach it now, it goes when released
  }
}
