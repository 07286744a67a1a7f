// Python values that JSON-like JavaScript values cannot tell apart, kept apart where a protocol can carry them.

/** A Python tuple in command arguments, where the protocol keeps tuples apart from lists (PB does; msgpack cannot). */
export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}
