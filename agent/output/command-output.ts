// One command's output path: per-stream line splitting, then batching into messages for the protocol.

import type { LineChunk, StatusValue, TextStream, UpdateItem } from '../commands/types.js';
import { BufferManager, type MessageSender, type Timers, realTimers } from './buffer.js';
import { LineBoundaryFinder } from './lines.js';
import type { OutputSettings } from './settings.js';

export class CommandOutput {
  private readonly finders = new Map<string, LineBoundaryFinder>();
  private readonly buffer: BufferManager;

  constructor(
    private readonly settings: OutputSettings,
    send: MessageSender,
    private readonly now: () => number,
    timers: Timers = realTimers,
  ) {
    this.buffer = new BufferManager(send, settings.bufferSize, settings.bufferTimeoutMs, timers);
  }

  text(stream: TextStream, text: string): void {
    const chunk = this.finder(stream).append(text, this.now());
    if (chunk) this.buffer.append({ kind: 'text', key: stream, chunk });
  }

  log(name: string, text: string): void {
    const chunk = this.finder(`log:${name}`).append(text, this.now());
    if (chunk) this.buffer.append({ kind: 'log', name, chunk });
  }

  status(key: string, value: StatusValue): void {
    this.buffer.append({ kind: 'status', key, value });
  }

  /** Sends everything pending: partial lines get their '\n' (the master only stores whole lines), then the buffer. */
  flush(): void {
    // stable order, as buildbot-worker (sorted stream keys)
    for (const key of [...this.finders.keys()].sort()) {
      const chunk: LineChunk | null = this.finders.get(key)!.flush();
      if (!chunk) continue;
      const item: UpdateItem = key.startsWith('log:')
        ? { kind: 'log', name: key.slice(4), chunk }
        : { kind: 'text', key: key as TextStream, chunk };
      this.buffer.append(item);
    }
    this.buffer.flush();
  }

  /** Sends what is buffered without terminating partial lines (before an interrupt). */
  flushBuffer(): void {
    this.buffer.flush();
  }

  dispose(): void {
    this.buffer.dispose();
  }

  private finder(key: string): LineBoundaryFinder {
    let f = this.finders.get(key);
    if (!f) {
      f = new LineBoundaryFinder(this.settings.maxLineLength, this.settings.newlineRe);
      this.finders.set(key, f);
    }
    return f;
  }
}
