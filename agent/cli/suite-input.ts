// Standard input for the suite subcommands (`-` as a file): decoded text chunks, or the whole text.
import { AgentError, errorMessage } from '../errors.js';

export async function* stdinChunks(input: NodeJS.ReadableStream = process.stdin): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8');
  try {
    for await (const chunk of input) {
      const text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      if (text.length > 0) yield text;
    }
  } catch (err) {
    throw new AgentError('E_SUITE_REPORT_READ', `standard input: cannot read (${errorMessage(err)})`);
  }
  const rest = decoder.decode();
  if (rest.length > 0) yield rest;
}

export async function readStdin(input: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const parts: string[] = [];
  for await (const text of stdinChunks(input)) parts.push(text);
  return parts.join('');
}
