// Reading a report as text, a chunk at a time (a report can be larger than memory): the file's bytes decoded by
// their byte-order mark (UTF-8 by default, UTF-16 with a BOM), and the line splitting TAP and mozlog share.
import { createReadStream } from 'node:fs';
import { AgentError, errorMessage } from '../../errors.js';

/** Bytes read at a time: large enough that per-chunk costs vanish, small enough to keep memory flat. */
export const READ_CHUNK_BYTES = 256 * 1024;

/** Limits that keep a hostile or broken report from taking the agent's memory. */
export interface ParseLimits {
  /** The longest line of a TAP or mozlog report, and the longest single XML token (an attribute value, a
   *  CDATA section, a failure message), in characters. */
  maxTokenChars: number;
  /** How deep XML elements may nest (JUnit nests testsuites a few levels; thousands is an attack). */
  maxDepth: number;
}

export const DEFAULT_LIMITS: ParseLimits = { maxTokenChars: 64 * 1024 * 1024, maxDepth: 256 };

/** The decoded text of `file`, in chunks. Read errors name the file. */
export async function* readTextChunks(file: string, chunkBytes = READ_CHUNK_BYTES): AsyncGenerator<string> {
  const stream = createReadStream(file, { highWaterMark: chunkBytes });
  let decoder: TextDecoder | undefined;
  try {
    for await (const raw of stream as AsyncIterable<Buffer>) {
      let bytes = raw;
      if (decoder === undefined) {
        const [encoding, bom] = encodingOf(bytes);
        decoder = new TextDecoder(encoding);
        bytes = bytes.subarray(bom);
      }
      const text = decoder.decode(bytes, { stream: true });
      if (text.length > 0) yield text;
    }
  } catch (err) {
    throw new AgentError('E_SUITE_REPORT_READ', `${file}: cannot read the report (${errorMessage(err)})`);
  } finally {
    stream.destroy();
  }
  const rest = decoder?.decode() ?? '';
  if (rest.length > 0) yield rest;
}

/** The encoding a byte-order mark names, and the mark's length (TextDecoder would drop a UTF-8 one, not others). */
function encodingOf(head: Buffer): [string, number] {
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return ['utf-8', 3];
  if (head[0] === 0xff && head[1] === 0xfe) return ['utf-16le', 2];
  if (head[0] === 0xfe && head[1] === 0xff) return ['utf-16be', 2];
  return ['utf-8', 0];
}

/** Chunks from a string (tests, stdin already read). */
export async function* textChunks(text: string, chunkChars = READ_CHUNK_BYTES): AsyncGenerator<string> {
  for (let i = 0; i < text.length; i += chunkChars) yield text.slice(i, i + chunkChars);
}

/**
 * Calls `onLine` for each line (without its \n or \r\n) with its 1-based number; `onLine` returns false to stop
 * reading. A line longer than `maxChars` is an error naming the file and line: it is never held whole.
 */
export async function forEachLine(
  chunks: AsyncIterable<string>,
  file: string,
  maxChars: number,
  onLine: (line: string, lineNo: number) => boolean | void,
): Promise<void> {
  let carry = '';
  let lineNo = 0;
  for await (const chunk of chunks) {
    let start = 0;
    let nl = chunk.indexOf('\n');
    while (nl >= 0) {
      let line = carry.length > 0 ? carry + chunk.slice(start, nl) : chunk.slice(start, nl);
      carry = '';
      if (line.length > maxChars) throw tooLong(file, lineNo + 1, maxChars);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (onLine(line, ++lineNo) === false) return;
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    carry += chunk.slice(start);
    if (carry.length > maxChars) throw tooLong(file, lineNo + 1, maxChars);
  }
  if (carry.length > 0) onLine(carry.endsWith('\r') ? carry.slice(0, -1) : carry, ++lineNo);
}

function tooLong(file: string, lineNo: number, maxChars: number): AgentError {
  return new AgentError('E_SUITE_REPORT_LIMIT', `${file}:${lineNo}: a line longer than ${maxChars} characters: not a report this agent reads`);
}
