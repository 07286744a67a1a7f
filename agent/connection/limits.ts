// What the agent accepts from a master in one message, on both protocols. Sized from what a Buildbot 3.7 master
// really sends, so that a broken or hostile peer cannot make the agent hold unbounded memory or stall its loop.

const MiB = 1024 * 1024;

/**
 * The largest message (msgpack: one WebSocket message, after decompression; PB: one top-level Banana
 * expression). The largest messages a 3.7 master sends are `start_command` arguments: a command that can run at
 * all fits the OS's limit on argv + environment (Linux ARG_MAX, 2 MiB by default; Windows, 32 KiB), so 16 MiB
 * is that with room for `initial_stdin` and big environments. File data is the other large payload: over PB
 * each block is one Banana string (at most 640 KiB), over msgpack the agent never asks for more than
 * MAX_READ_BLOCK_BYTES at once (and the 3.7 master answers every read with None).
 */
export const MAX_MESSAGE_BYTES = 16 * MiB;

/**
 * A compressed message (msgpack permessage-deflate) is inflated to its end even when it is over MAX_MESSAGE_BYTES,
 * to keep the compression context the master's next messages refer to (only its request is read, the bytes are
 * not kept); past this the link is closed (1009). Bounds the CPU a deflate bomb costs: about a second, where the
 * 16 MiB a message may take on the wire can inflate to 16 GiB.
 */
export const MAX_INFLATED_MESSAGE_BYTES = 64 * MAX_MESSAGE_BYTES;

/**
 * The most values (strings, numbers, lists, maps, each counted once) in one message. A value costs 30-60 bytes of
 * heap however small it is on the wire (an empty list is 1 byte of msgpack, 2 of Banana), so this, not the byte
 * limit, bounds the memory a message of tiny values takes, and the garbage collector's pause after it (1,000,000
 * values paused the agent's loop for 200 ms). Real messages hold hundreds; a command line of 50,000 words takes
 * 150,000 over PB (each word is a unicode tag and its bytes).
 */
export const MAX_MESSAGE_VALUES = 250_000;

/** The deepest nesting of lists and maps. Buildbot's deepest messages nest about 10 levels. */
export const MAX_NESTING = 512;

/** msgpack `update_read_file` asks for at most this many bytes, so the answer fits in one message. */
export const MAX_READ_BLOCK_BYTES = 8 * MiB;

/**
 * PB before the login completed (the master's answer to `respond`, after it attached the worker): the master
 * sends the login challenge, a few calls on the worker (print, getWorkerInfo, setBuilderList) and nothing large.
 * A builder list of 10,000 builders takes about 1 MiB and 70,000 values.
 */
export const PRELOGIN_MAX_MESSAGE_BYTES = 1 * MiB;
export const PRELOGIN_MAX_MESSAGE_VALUES = 100_000;
/** All bytes received before the login completed. */
export const PRELOGIN_MAX_TOTAL_BYTES = 4 * MiB;

export interface MessageLimits {
  maxBytes: number;
  maxValues: number;
}

export const MESSAGE_LIMITS: MessageLimits = { maxBytes: MAX_MESSAGE_BYTES, maxValues: MAX_MESSAGE_VALUES };
export const PRELOGIN_LIMITS: MessageLimits = { maxBytes: PRELOGIN_MAX_MESSAGE_BYTES, maxValues: PRELOGIN_MAX_MESSAGE_VALUES };
