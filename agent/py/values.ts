// Python values that JSON-like JavaScript values cannot tell apart, kept apart where a protocol can carry them.

/** A Python tuple in command arguments, where the protocol keeps tuples apart from lists (PB does; msgpack cannot). */
export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/**
 * A Python float, kept apart from integers: JS numbers alone cannot say 2.0 from 2. PB sends it as a FLOAT;
 * msgpack sends the number as it is (an integral value goes as an integer).
 */
export class PyFloat {
  constructor(readonly value: number) {}
}
