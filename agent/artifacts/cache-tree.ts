// An extracted tree through the cache, the way fetch --extract uses it: a tree hit (manifest verified) needs
// neither the archive nor the network; a tree miss, or a tree that failed its check, is extracted again from
// the archive's cache entry (itself re-verified on that hit, or downloaded on a miss). The archive stays pinned
// while it is extracted.

import type { ArtifactCache, CacheResult } from './cache.js';
import { extractedKey, fileKey } from './cache-key.js';
import type { Produce } from './cache-publish.js';

export interface TreeSource {
  algorithm: string;
  /** Digest of the archive. */
  digest: string;
  /** Writes the archive at a temp path (called on an archive miss only). */
  download: Produce;
  /**
   * Extracts the verified archive into the empty directory `dir`; may return the files' sha256 computed while
   * writing them (extractArchive's `hashFiles`), which spares the manifest a second read of the tree.
   */
  extract: (archive: string, dir: string) => Promise<{ fileHashes?: ReadonlyMap<string, string> } | void>;
  /** The archive's size, if known (the floor check before the download). */
  archiveBytes?: number;
}

export interface TreeResult {
  tree: CacheResult;
  /** The archive's entry, when the tree had to be extracted (absent on a tree hit). */
  archive?: CacheResult;
}

/** The tree extracted from an archive, from the cache when it verifies. Callers pin the tree key themselves. */
export async function getExtractedTree(cache: ArtifactCache, src: TreeSource): Promise<TreeResult> {
  const archiveKey = fileKey(src.algorithm, src.digest);
  let archive: CacheResult | undefined;
  const tree = await cache.get(extractedKey(src.algorithm, src.digest), {
    // the tree takes at least what the archive does: room for it before anything is downloaded
    expectedBytes: src.archiveBytes,
    produce: async (dir) => {
      const lease = await cache.acquire(archiveKey);
      try {
        archive = await cache.get(archiveKey, { produce: src.download, expectedBytes: src.archiveBytes });
        const extracted = await src.extract(archive.path, dir);
        // a later tree hit reports the archive's size without it
        return { sourceBytes: archive.bytes, ...(extracted?.fileHashes ? { fileHashes: extracted.fileHashes } : {}) };
      } finally {
        lease.release();
      }
    },
  });
  return { tree, archive };
}
