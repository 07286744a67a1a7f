// Python's file system encoding on POSIX: UTF-8 with surrogateescape (os.fsdecode / os.fsencode), so a file
// name that is not valid UTF-8 keeps its bytes through a round trip, as it does in buildbot-worker.

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Length of the valid UTF-8 sequence at `i`, or 0 when the byte there starts no valid sequence. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => {
    const x = b[i + k];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/**
 * os.fsdecode: UTF-8 with surrogateescape, so a name that is not valid UTF-8 keeps its bytes
 * (each bad byte becomes a lone U+DC80..U+DCFF) and can be turned back into the same path by fsencode.
 */
export function fsdecode(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // fall through: some bytes are not UTF-8
  }
  let out = '';
  let start = 0;
  let i = 0;
  while (i < bytes.length) {
    const n = utf8SequenceLength(bytes, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > start) out += strictUtf8.decode(bytes.subarray(start, i));
    out += String.fromCharCode(0xdc00 + bytes[i]!);
    i += 1;
    start = i;
  }
  if (i > start) out += strictUtf8.decode(bytes.subarray(start, i));
  return out;
}

/** os.fsencode: the inverse of fsdecode (lone U+DC80..U+DCFF become the raw bytes again). */
export function fsencode(s: string): Buffer {
  if (!/[\uDC80-\uDCFF]/.test(s)) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let run = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch.length === 1 && c >= 0xdc80 && c <= 0xdcff) {
      if (run) parts.push(Buffer.from(run, 'utf8'));
      run = '';
      parts.push(Buffer.from([c - 0xdc00]));
    } else {
      run += ch;
    }
  }
  if (run) parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts);
}

/** A path for Node's fs calls that keeps surrogate-escaped bytes intact. */
export function fsPath(p: string): string | Buffer {
  return /[\uDC80-\uDCFF]/.test(p) ? fsencode(p) : p;
}
