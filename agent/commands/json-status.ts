// Structured results of bbagent's own commands (fetch, suite, perf) reach the master as status updates: one JSON
// document under one status key, cut into pieces of at most JSON_STATUS_PIECE characters so that no single
// update comes near a protocol's message limit (PB's Banana refuses strings over 640 KiB). The master keeps every
// update of an unknown key in order (`RemoteCommand.updates[key]`, a list); the master-side package
// (master/bbagent_buildbot/common.py, `json_status`) joins the pieces and parses them.

import type { CommandIO } from './types.js';

export const JSON_STATUS_PIECE = 256 * 1024;

function redactedValue(v: unknown, redact: (text: string) => string): unknown {
  if (typeof v === 'string') return redact(v);
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [redact(k), x]));
}

/**
 * Sends `value` as JSON under `key` (its strings redacted like the step's output), in order, in pieces of at most `piece` characters. Characters past ASCII are
 * written as \uXXXX escapes: a piece is then as many bytes as characters on the wire, and a cut never splits a
 * surrogate pair (each half alone would reach the master as U+FFFD, and the document would change).
 */
export function sendJsonStatus(io: CommandIO, key: string, value: unknown, piece = JSON_STATUS_PIECE): void {
  // secrets are replaced in the document's strings and keys before it is encoded and cut (a piece could split one)
  const redact = io.redact?.bind(io);
  const text = JSON.stringify(value, redact ? (_k, v: unknown) => redactedValue(v, redact) : undefined).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  if (text.length === 0) return;
  for (let at = 0; at < text.length; at += piece) io.status(key, text.slice(at, at + piece));
}
