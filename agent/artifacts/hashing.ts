// The digests a fetch may pin (sha256, sha512): validation of the expected hex, and the streaming hash of a
// download. The hash state lives as long as the partial file it describes, so a resumed download (Range) goes on
// hashing from where the dropped attempt stopped without reading the kept prefix back from disk.

import { createHash, type Hash } from 'node:crypto';
import { AgentError } from '../errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

/** What the caller pins the content to: an algorithm and the lowercase hex digest. */
export interface ExpectedDigest {
  algorithm: DigestAlgorithm;
  digest: string;
}

const HEX_CHARS: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

/** The expected digest with its hex in lower case; throws E_FETCH_DIGEST for an unknown algorithm or bad hex. */
export function checkDigest(expected: ExpectedDigest): ExpectedDigest {
  const { algorithm, digest } = expected;
  const want = (HEX_CHARS as Record<string, number | undefined>)[algorithm];
  if (want === undefined) throw new AgentError('E_FETCH_DIGEST', `unsupported digest algorithm '${String(algorithm)}' (use sha256 or sha512)`);
  if (typeof digest !== 'string' || digest.length !== want || !/^[0-9a-fA-F]+$/.test(digest)) {
    throw new AgentError('E_FETCH_DIGEST', `a ${algorithm} digest is ${want} hex characters, got '${String(digest)}'`);
  }
  return { algorithm, digest: digest.toLowerCase() };
}

/**
 * The hash of the bytes kept so far. Invariant kept by the downloader: `bytes` equals the length of the partial
 * file's content (written or queued), so after a drop the next attempt resumes at `bytes` with this very state.
 */
export class StreamHash {
  private hash: Hash;
  bytes = 0;

  constructor(readonly algorithm: DigestAlgorithm) {
    this.hash = createHash(algorithm);
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  /** Forgets everything (the download starts again from byte 0). */
  reset(): void {
    this.hash = createHash(this.algorithm);
    this.bytes = 0;
  }

  /** The hex digest of the bytes so far; the state stays usable (a copy is finalised). */
  hex(): string {
    return this.hash.copy().digest('hex');
  }
}
