// Acknowledging a PB master's answers when we have nothing to send. Twisted leaves Nagle's algorithm on, so the
// master holds a small answer while an earlier one of its small answers is unacknowledged; our kernel delays
// that acknowledgement (up to 40 ms on Linux) until we send something. With a call still unanswered that is a
// stall: measured at the end of a directory upload, the answer to the last write waited 25-41 ms behind the
// answer to an output update. When the master's bytes arrived and a turn of the event loop passed without our
// writing anything while an answer is still due, a message that does nothing goes out, carrying the ACK.

/** What the nudger needs of the connection: whether a call awaits its answer, and the no-op message. */
export interface NudgeTarget {
  readonly awaitingAnswers: boolean;
  sendNoop(): void;
}

export interface AckNudger {
  /** Bytes from the master arrived. */
  received(): void;
  /** We wrote something (it carries the acknowledgement). */
  wrote(): void;
}

export function ackNudger(target: NudgeTarget): AckNudger {
  let wrote = false;
  let scheduled = false;
  const check = (): void => {
    scheduled = false;
    if (!wrote && target.awaitingAnswers) target.sendNoop();
  };
  return {
    received: () => {
      wrote = false;
      if (scheduled) return;
      scheduled = true;
      setImmediate(check);
    },
    wrote: () => {
      wrote = true;
    },
  };
}
