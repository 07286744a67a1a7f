// A CommandChannel that records what a command sends, for unit tests of commands and the command host.

import type { CommandChannel, CommandFailure, RemoteReader, RemoteWriter, UploadKind } from '../../agent/commands/types.js';
import type { UpdateItem } from '../../agent/output/types.js';

export class RecordingChannel implements CommandChannel {
  readonly messages: UpdateItem[][] = [];
  failure: CommandFailure | null | undefined = undefined;
  /** What writer(kind) gives, whatever the kind; the kinds asked for are in writerKinds. */
  uploadWriter: RemoteWriter | undefined;
  readonly writerKinds: UploadKind[] = [];
  reader: RemoteReader | undefined;
  private resolveDone!: () => void;
  readonly completed = new Promise<void>((r) => (this.resolveDone = r));

  writer(kind: UploadKind): RemoteWriter | undefined {
    this.writerKinds.push(kind);
    return this.uploadWriter;
  }

  sendUpdate(items: UpdateItem[]): void {
    this.messages.push(items);
  }

  async complete(failure: CommandFailure | null): Promise<void> {
    this.failure = failure;
    this.resolveDone();
  }

  get items(): UpdateItem[] {
    return this.messages.flat();
  }

  /** All text of one stream, concatenated. */
  text(key: 'stdout' | 'stderr' | 'header'): string {
    return this.items.map((i) => (i.kind === 'text' && i.key === key ? i.chunk.text : '')).join('');
  }

  log(name: string): string {
    return this.items.map((i) => (i.kind === 'log' && i.name === name ? i.chunk.text : '')).join('');
  }

  status(key: string): unknown[] {
    return this.items.flatMap((i) => (i.kind === 'status' && i.key === key ? [i.value] : []));
  }

  /** Keys in the order they were sent, e.g. ['header', 'stdout', 'rc', 'header', 'elapsed']. */
  get keys(): string[] {
    return this.items.map((i) => (i.kind === 'log' ? 'log' : i.key));
  }
}
