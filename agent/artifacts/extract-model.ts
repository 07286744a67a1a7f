// What an extraction has created so far, kept in memory: the temp directory is new and only this extraction
// writes it, so the model is the truth about it. Every member is checked against the model before it is written:
// no parent may be a symlink the archive made (the symlink-then-file attack), a hardlink must name an earlier
// regular file, and a file cannot replace a directory. At the end, every symlink is resolved through the others
// (a chain like `a -> .` plus `b -> a/..` escapes although each link alone stays inside).

import { foldedKey, pathKey, resolveLinkTarget } from './safe-path.js';

export type NodeKind = 'dir' | 'file' | 'symlink';

interface ModelNode {
  kind: NodeKind;
  /** a symlink's target as stored in the archive */
  target?: string;
}

/** Linux follows at most 40 symlinks in one lookup (MAXSYMLINKS); a longer chain is refused. */
const MAX_LINK_HOPS = 40;

export class ExtractModel {
  private readonly nodes = new Map<string, ModelNode>();
  /** folded keys of every symlink: a parent matching one is refused even if spelled differently */
  private readonly foldedLinks = new Set<string>();

  kindOf(parts: readonly string[]): NodeKind | undefined {
    return this.nodes.get(pathKey(parts))?.kind;
  }

  /**
   * Why the parents of `parts` cannot hold a new member, or null. Missing parents are fine (they are made as
   * directories); listed in `missing`, shallowest first.
   */
  parentProblem(parts: readonly string[], missing: string[][]): string | null {
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i);
      if (this.foldedLinks.has(foldedKey(prefix))) return `its parent '${pathKey(prefix)}' is a symlink from the archive`;
      const kind = this.kindOf(prefix);
      if (kind === undefined) missing.push(prefix);
      else if (kind !== 'dir') return `its parent '${pathKey(prefix)}' is a ${kind}`;
    }
    return null;
  }

  /** Why a member of `kind` cannot replace what is at `parts` now, or null. */
  replaceProblem(parts: readonly string[], kind: NodeKind): string | null {
    const now = this.kindOf(parts);
    if (now === undefined) return null;
    if (now === 'dir' && kind !== 'dir') return `an earlier member made '${pathKey(parts)}' a directory`;
    if (now !== 'dir' && kind === 'dir') return `an earlier member made '${pathKey(parts)}' a ${now}`;
    return null;
  }

  add(parts: readonly string[], kind: NodeKind, target?: string): void {
    const key = pathKey(parts);
    const old = this.nodes.get(key);
    if (old?.kind === 'symlink') this.foldedLinks.delete(foldedKey(parts));
    this.nodes.set(key, target === undefined ? { kind } : { kind, target });
    if (kind === 'symlink') this.foldedLinks.add(foldedKey(parts));
  }

  /** Every directory, deepest first (for modes and mtimes applied after their contents). */
  dirsDeepestFirst(): string[][] {
    const dirs: string[][] = [];
    for (const [key, node] of this.nodes) if (node.kind === 'dir') dirs.push(key === '' ? [] : key.split('/'));
    return dirs.sort((a, b) => b.length - a.length);
  }

  /** Each symlink whose full resolution (through the other symlinks) leaves the root: [link, reason]. */
  escapingLinks(): [string, string][] {
    const bad: [string, string][] = [];
    for (const [key, node] of this.nodes) {
      if (node.kind !== 'symlink' || node.target === undefined) continue;
      const reason = this.resolveProblem(key.split('/'), node.target);
      if (reason) bad.push([key, reason]);
    }
    return bad;
  }

  /** Follows `target` (of the link at `linkParts`) component by component through the model's symlinks. */
  private resolveProblem(linkParts: string[], target: string): string | null {
    // pending: components still to walk; done: the real directories walked so far
    const first = resolveLinkTarget(linkParts, target);
    if (!first.ok) return first.reason;
    let pending = lexicalSteps(linkParts.slice(0, -1), target);
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const step = pending.shift() as string;
      if (step === '..') {
        if (done.pop() === undefined) return `symlink target '${target}' leaves the extraction root through other symlinks`;
        continue;
      }
      done.push(step);
      const node = this.nodes.get(pathKey(done));
      if (node?.kind !== 'symlink' || node.target === undefined) continue;
      if (++hops > MAX_LINK_HOPS) return `symlink target '${target}' needs more than ${MAX_LINK_HOPS} links to resolve`;
      const linkDir = done.slice(0, -1);
      if (!resolveLinkTarget([...linkDir, ''], node.target).ok) return `symlink target '${target}' goes through '${pathKey(done)}', which leaves the root`;
      pending = [...lexicalSteps([], node.target), ...pending];
      done.length = 0;
      done.push(...linkDir);
    }
    return null;
  }
}

/** `base` followed by the components of a relative `target`, `..` kept as a step (it is resolved physically). */
function lexicalSteps(base: readonly string[], target: string): string[] {
  return [...base, ...target.split(/[\\/]/).filter((p) => p !== '' && p !== '.')];
}
