// Protocol fuzz (issue 10, fault suite; items 9 and 4). Seeds: the messages a real Buildbot 3.7 master sent to
// bbagent during a build, recorded at the start of the run through the fault proxy (helpers/conn-fuzz-corpus.ts).
// What is driven how:
// - a real agent process (the built bundle), one per protocol, against a fuzzing fake master over loopback
//   (helpers/conn-fuzz-master.ts): REAL_FRAMES structure-mutated requests per protocol, many per connection
//   and pipelined, each of which must be answered (or its connection replaced) within 5 s; then frames that
//   break the stream and the targeted cases of item 9 (endless list before the login, values, bytes and nesting
//   over the limits, shared references that expand exponentially, a cycle, a frame over the limit, a text frame,
//   a reserved opcode), each answered with an error or followed by a reconnect within 5 s; and two deflate bombs
//   (256 MiB inflated), one naming its request and answered with an error, one naming none and ignored, both on
//   the same connection.
//   Meanwhile the agent never exits, its RSS stays under 300 MiB and its loop never stalls 200 ms or more.
// - the decoders and sessions in this process (Banana + Broker + PbWorker; msgpack scan/decode + MsgpackSession
//   over an in-memory WebSocket): IN_PROCESS_FRAMES byte-mutated frames per protocol, where a frame that breaks
//   the stream costs nothing: each complete request in a frame is answered or the connection closed, nothing
//   throws, no call blocks 200 ms.
import { decode as mpDecode, encode as mpEncode } from '@msgpack/msgpack';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { Worker } from '../../agent/worker/worker.js';
import { MAX_MESSAGE_BYTES, MAX_MESSAGE_VALUES, MAX_NESTING } from '../../agent/connection/limits.js';
import { MsgpackSession } from '../../agent/connection/msgpack/session.js';
import { atom, dialectOffer, encode, SIZE_LIMIT, type Sexp } from '../../agent/connection/pb/banana.js';
import { BananaDecoder } from '../../agent/connection/pb/banana-decoder.js';
import { Broker } from '../../agent/connection/pb/broker.js';
import { describePbError } from '../../agent/connection/pb/failures.js';
import { PbWorker } from '../../agent/connection/pb/worker-objects.js';
import { silentLogger } from '../../agent/log.js';
import { currentPlatform } from '../../platforms/index.js';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { FUZZ_PASSWORD, FUZZ_WORKER, recordMsgpackCorpus, recordPbCorpus, type MsgpackCorpus, type PbCorpus } from './helpers/conn-fuzz-corpus.js';
import { compressedFrame, FuzzMsgpackMaster, FuzzPbMaster, type FuzzMaster, type Outcome } from './helpers/conn-fuzz-master.js';
import { mutateBytes, mutateSexp, mutateValue, Rng } from './helpers/conn-fuzz-mutate.js';

const REAL_FRAMES = 100_000;
const IN_PROCESS_FRAMES = 100_000;
/** Requests in flight at once to the real agent. */
const WINDOW = 64;
/** Each bad frame gets an error answer or a reconnect within this. */
const ANSWER_BOUND_MS = 5000;
const RSS_LIMIT_MIB = 300;
const STALL_LIMIT_MS = 200;
const SEED = 0x5eed_b0b;

const MiB = 1024 * 1024;

/** Commands a mutated copy may not start: they remove, overwrite or create (the corpus has none of them). */
const DESTRUCTIVE = new Set(['rmdir', 'rmfile', 'mkdir', 'cpdir', 'downloadFile', 'download_file', 'move', 'rm']);

let pbCorpus: PbCorpus;
let mpCorpus: MsgpackCorpus;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  [pbCorpus, mpCorpus] = await Promise.all([recordPbCorpus(), recordMsgpackCorpus()]);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(cleanups.map((c) => c()));
});

// ---- corpus views ----

const text = (b: Sexp | undefined): string => (Buffer.isBuffer(b) ? b.toString('utf8') : '');

/** The command name of a recorded startCommand message (args tuple: ref, stepId, name, args). */
function pbCommandName(e: Sexp[]): string | undefined {
  const args = e[5];
  if (!Array.isArray(args)) return undefined;
  const name = args[3];
  return Array.isArray(name) ? text(name[1]) : undefined;
}

/** The master's requests worth mutating: every message but shutdown, the login's builder list and destructive commands. */
function pbRequests(c: PbCorpus): Sexp[][] {
  return c.expressions.filter((e): e is Sexp[] => {
    if (!Array.isArray(e) || text(e[0]) !== 'message') return false;
    const method = text(e[3]);
    if (method === 'shutdown' || method === 'setBuilderList') return false;
    return method !== 'startCommand' || !DESTRUCTIVE.has(pbCommandName(e) ?? '');
  });
}

function pbBuilderListArgs(c: PbCorpus): Sexp {
  const e = c.expressions.find((x) => Array.isArray(x) && text(x[3]) === 'setBuilderList') as Sexp[] | undefined;
  if (!e) throw new Error('the recorded PB session has no setBuilderList');
  return e[5]!;
}

function mpRequests(c: MsgpackCorpus): Record<string, unknown>[] {
  return c.messages.filter((m) => m['op'] !== 'response' && m['op'] !== 'shutdown' && !DESTRUCTIVE.has(String(m['command_name'] ?? '')));
}

/** Every string in a value (msgpack map or s-expression), as material for mutations. */
function stringsOf(v: unknown, out = new Set<string>()): string[] {
  if (typeof v === 'string') out.add(v);
  else if (Buffer.isBuffer(v)) out.add(v.toString('utf8'));
  else if (Array.isArray(v)) for (const x of v) stringsOf(x, out);
  else if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    for (const [k, x] of Object.entries(v)) {
      out.add(k);
      stringsOf(x, out);
    }
  }
  return [...out].filter((s) => s !== 'shutdown' && !DESTRUCTIVE.has(s));
}

/** Shell commands spawn processes: keep them rare so the fuzz measures the protocol, not fork(). */
function weighted<T>(items: T[], isShell: (x: T) => boolean, rng: Rng): () => T {
  const shells = items.filter(isShell);
  const rest = items.filter((x) => !isShell(x));
  return () => (shells.length && rng.chance(0.02) ? rng.pick(shells) : rng.pick(rest.length ? rest : items));
}

// ---- the real agent ----

interface RealRun {
  frames: number;
  answers: number;
  errors: number;
  closed: number;
  maxAnswerMs: number;
  maxReconnectMs: number;
  violations: string[];
  /** Requests answered after more than 500 ms (the first few), for the report. */
  slow: string[];
}

class AgentWatch {
  maxRssMiB = 0;
  private readonly timer: NodeJS.Timeout;
  private lastTick = Date.now();
  /** Windows [from, to] (epoch ms) in which this test process's own 100 ms sampler ran late by 100 ms or more. */
  private readonly starved: [number, number][] = [];

  constructor(readonly worker: BbagentWorker) {
    this.timer = setInterval(() => this.tick(), 100);
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.lastTick - 100 >= 100) this.starved.push([this.lastTick, now]);
    this.lastTick = now;
    this.sample();
  }

  sample(): void {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.worker.pid}/status`, 'utf8'));
      if (m) this.maxRssMiB = Math.max(this.maxRssMiB, Number(m[1]) / 1024);
    } catch {
      // gone: the exit check reports it
    }
  }

  /** CPU seconds the agent used so far (user + system). */
  cpuSeconds(): number {
    const fields = readFileSync(`/proc/${this.worker.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  /**
   * Loop stalls of STALL_LIMIT_MS or more in the agent's whole log, except those during which this test process
   * was held up too: on a loaded machine (CI running test files side by side) both processes lose the CPU at once,
   * and the agent's monitor cannot tell that from a blocked loop. A stall the agent causes itself (a synchronous
   * call that takes long) holds up only the agent, and is reported.
   */
  stalls(): string[] {
    const log = readFileSync(path.join(this.worker.dir, 'bbagent.log'), 'utf8');
    // a stall line without a time this can read counts as a stall (a changed log format must not hide one)
    const untimed = [...log.matchAll(/^(?!\S+ \[warn\] event loop blocked).*event loop blocked for (\d+) ms/gm)];
    if (untimed.some((m) => Number(m[1]) >= STALL_LIMIT_MS)) return untimed.map((m) => m[0]);
    return [...log.matchAll(/^(\S+) \[warn\] event loop blocked for (\d+) ms/gm)]
      .filter((m) => Number(m[2]) >= STALL_LIMIT_MS)
      .filter((m) => {
        const end = Date.parse(m[1]!);
        const start = end - Number(m[2]);
        return !this.starved.some(([from, to]) => from < end && to > start);
      })
      .map((m) => `${m[1]} event loop blocked for ${m[2]} ms`);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

function newRun(): RealRun {
  return { frames: 0, answers: 0, errors: 0, closed: 0, maxAnswerMs: 0, maxReconnectMs: 0, violations: [], slow: [] };
}

/** Accounts one request: answered within the bound, or its connection replaced within the bound. */
async function settle(master: FuzzMaster, run: RealRun, what: string, sentAt: number, outcome: Promise<Outcome>): Promise<void> {
  const o = await outcome;
  run.frames++;
  if (o.kind !== 'closed') {
    if (o.kind === 'answer') run.answers++;
    else run.errors++;
    run.maxAnswerMs = Math.max(run.maxAnswerMs, o.at - sentAt);
    if (o.at - sentAt > 500 && run.slow.length < 10) run.slow.push(`${what} ${o.at - sentAt} ms`);
    if (o.at - sentAt > ANSWER_BOUND_MS) run.violations.push(`${what}: answered after ${o.at - sentAt} ms`);
    return;
  }
  run.closed++;
  try {
    await waitUntil(() => master.ready && master.lastLoginAt >= o.at, sentAt + ANSWER_BOUND_MS + 2000 - Date.now());
  } catch {
    // measured below
  }
  const ms = master.ready && master.lastLoginAt >= o.at ? master.lastLoginAt - sentAt : Infinity;
  run.maxReconnectMs = Math.max(run.maxReconnectMs, ms);
  if (ms > ANSWER_BOUND_MS) run.violations.push(`${what}: connection closed, and no new login within ${ANSWER_BOUND_MS} ms of the frame (${ms} ms)`);
}

async function waitUntil(pred: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + Math.max(0, timeoutMs);
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Sends `n` requests from `next`, WINDOW at a time, waiting for a logged-in connection whenever there is none. */
async function pump(
  master: FuzzMaster,
  run: RealRun,
  n: number,
  next: () => { what: string; send: () => Promise<Outcome> | undefined } | undefined,
): Promise<void> {
  const inflight = new Set<Promise<void>>();
  for (let i = 0; i < n; i++) {
    if (!master.ready) await master.waitReady(ANSWER_BOUND_MS * 2);
    const frame = next();
    if (!frame) continue;
    const sentAt = Date.now();
    const outcome = frame.send();
    if (!outcome) continue;
    const task = settle(master, run, frame.what, sentAt, outcome);
    inflight.add(task);
    void task.finally(() => inflight.delete(task));
    if (inflight.size >= WINDOW) await Promise.race(inflight);
  }
  await Promise.all(inflight);
}

/** One targeted frame, on its own: the outcome must be `expected` (an answer, or the connection replaced). */
async function single(
  master: FuzzMaster,
  run: RealRun,
  what: string,
  expected: 'answer' | 'closed',
  send: () => Promise<Outcome> | undefined,
): Promise<Outcome['kind']> {
  await master.waitReady(ANSWER_BOUND_MS * 2);
  const sentAt = Date.now();
  const outcome = send();
  if (!outcome) throw new Error(`${what}: could not be sent`);
  const o = await outcome;
  await settle(master, run, what, sentAt, Promise.resolve(o));
  const got = o.kind === 'closed' ? 'closed' : 'answer';
  if (got !== expected) run.violations.push(`${what}: expected ${expected === 'answer' ? 'an answer' : 'the connection to be dropped'}, got ${o.kind}`);
  return o.kind;
}

async function startAgent(protocol: 'pb' | 'msgpack', port: number): Promise<{ worker: BbagentWorker; watch: AgentWatch }> {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), `bbagent-fuzz-${protocol}-`)), 'agent');
  const worker = await BbagentWorker.start({ dir, masterPort: port, name: FUZZ_WORKER, password: FUZZ_PASSWORD, protocol, createArgs: ['--no-logrotate'] });
  cleanups.push(() => worker.stop());
  return { worker, watch: new AgentWatch(worker) };
}

function report(protocol: string, run: RealRun, watch: AgentWatch, ms: number, extra: string): void {
  console.log(
    `${protocol} real agent: ${run.frames} frames in ${(ms / 1000).toFixed(1)} s (${run.answers} answers, ${run.errors} error answers, ${run.closed} dropped connections); ` +
      `slowest answer ${run.maxAnswerMs} ms, slowest reconnect ${run.maxReconnectMs === 0 ? '-' : `${run.maxReconnectMs} ms`}; max RSS ${watch.maxRssMiB.toFixed(0)} MiB; ` +
      `agent CPU ${watch.cpuSeconds().toFixed(1)} s; ${extra}${run.slow.length ? `; slow: ${run.slow.join(', ')}` : ''}`,
  );
}

function checkAgent(run: RealRun, watch: AgentWatch, master: FuzzMaster & { agentErrors: string[] }): void {
  watch.sample();
  watch.stop();
  expect(run.violations.slice(0, 20)).toEqual([]);
  expect(watch.worker.running).toBe(true);
  expect(watch.maxRssMiB).toBeLessThan(RSS_LIMIT_MIB);
  expect(watch.stalls()).toEqual([]);
  expect(master.agentErrors).toEqual([]);
}

/** Banana header digits (base 128, least significant first) of `n`. */
function b128(n: number): Buffer {
  const out: number[] = [];
  do {
    out.push(n % 128);
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.from(out);
}

/** A jelly chain where each level uses the previous one twice: 2 values per level on the wire, 2^levels expanded. */
function referenceBomb(levels: number): Sexp {
  let inner: Sexp = [atom('reference'), 0, [atom('list'), 1]];
  for (let k = 1; k <= levels; k++) inner = [atom('reference'), k, [atom('list'), inner, [atom('dereference'), k - 1]]];
  return inner;
}

describe('protocol fuzz against a real agent', () => {
  it.concurrent(
    'pb',
    async () => {
      const rng = new Rng(SEED);
      const requests = pbRequests(pbCorpus);
      const strings = stringsOf(requests);
      const pick = weighted(requests, (e) => pbCommandName(e) === 'shell', rng);
      const methods = [...new Set(requests.map((e) => text(e[3])))].concat(['getCommands', 'getVersion', 'bogus', '__proto__', 'constructor', 'remote_print']);
      const master = await FuzzPbMaster.start(pbBuilderListArgs(pbCorpus));
      cleanups.push(() => master.close());
      const { watch } = await startAgent('pb', master.port);
      await master.waitForLogins(1, 30_000);
      const run = newRun();
      const started = Date.now();

      await pump(master, run, REAL_FRAMES, () => {
        const base = pick();
        let objId = base[2]!;
        let method = text(base[3]);
        let args = base[5]!;
        let kwargs = base[6]!;
        for (let k = 1 + rng.int(3); k > 0; k--) {
          const r = rng.next();
          if (r < 0.75) args = mutateSexp(args, rng, strings);
          else if (r < 0.87) kwargs = mutateSexp(kwargs, rng, strings);
          else if (r < 0.94) objId = rng.pick<Sexp>([0, 1, 2, 3, 99, -1, atom('root'), Buffer.alloc(0)]);
          else method = rng.pick(methods);
        }
        if (method === 'shutdown') return undefined;
        const cached = rng.chance(0.01);
        return {
          what: `pb ${method} frame ${run.frames}`,
          send: () => master.current?.sendMessage((id) => [atom(cached ? 'cachemessage' : 'message'), id, objId, Buffer.from(method, 'utf8'), 1, args, kwargs]),
        };
      });
      const fuzzMs = Date.now() - started;

      // Targeted, after the login. Error answers, the link kept:
      const call = (what: string, args: Sexp): Promise<Outcome['kind']> =>
        single(master, run, what, 'answer', () =>
          master.current?.sendMessage((id) => [atom('message'), id, 1, Buffer.from('print'), 1, args, [atom('dictionary')]]),
        );
      await call('jelly references expanding to 2^40 values', [atom('tuple'), referenceBomb(40)]);
      await call('a jelly cycle', [atom('tuple'), [atom('reference'), 1, [atom('list'), [atom('dereference'), 1]]]]);
      await call('a jelly dereference to nothing', [atom('tuple'), [atom('dereference'), 77]]);
      // The stream cannot be trusted any more: the connection is dropped.
      const raw = (what: string, bytes: Buffer): Promise<Outcome['kind']> =>
        single(master, run, what, 'closed', () => master.current?.requestRaw(bytes, master.current.nextReqId()));
      await raw('an invalid banana type byte', Buffer.from([0x01, 0x80, 0x99]));
      await raw('a string over SIZE_LIMIT', Buffer.concat([b128(SIZE_LIMIT + 1), Buffer.from([0x82])]));
      await raw('a list over SIZE_LIMIT', Buffer.concat([b128(SIZE_LIMIT + 1), Buffer.from([0x80])]));
      await raw(`lists nested deeper than ${MAX_NESTING}`, Buffer.alloc(2 * (MAX_NESTING + 1), 0).fill(Buffer.from([0x01, 0x80])));
      await raw('an unknown vocabulary word', Buffer.from([0x7f, 0x87]));
      await raw('a header of 65 digits', Buffer.concat([Buffer.alloc(65, 0x01), Buffer.from([0x81])]));
      await raw('another PB version', encode([atom('version'), 7]));
      await raw(
        `more than ${MAX_MESSAGE_VALUES} values in one expression`,
        Buffer.concat([
          Buffer.from([0x02, 0x80]),
          ...[0, 1].map(() => Buffer.concat([b128(SIZE_LIMIT), Buffer.from([0x80]), Buffer.alloc(2 * SIZE_LIMIT, 0).fill(Buffer.from([0x00, 0x80]))])),
        ]),
      );
      const big = Buffer.concat([b128(SIZE_LIMIT), Buffer.from([0x82]), Buffer.alloc(SIZE_LIMIT, 0x61)]);
      const strings26 = Math.ceil(MAX_MESSAGE_BYTES / SIZE_LIMIT) + 1;
      await raw(
        `more than ${MAX_MESSAGE_BYTES} bytes in one expression`,
        Buffer.concat([b128(strings26), Buffer.from([0x80]), ...Array.from({ length: strings26 }, () => big)]),
      );
      // Before the login: the next connection gets an endless list right after the dialect offer.
      const loginsBefore = master.logins;
      let floodStopped = 0;
      master.setHostileLogin((s) => {
        s.write(Buffer.concat([b128(SIZE_LIMIT), Buffer.from([0x80])]));
        const chunk = Buffer.alloc(64 * 1024, 0).fill(Buffer.from([0x00, 0x80]));
        const more = (): void => {
          while (!s.destroyed && s.write(chunk));
          if (!s.destroyed) s.once('drain', more);
        };
        s.once('close', () => (floodStopped = Date.now()));
        more();
      });
      const cutAt = Date.now();
      master.current!.socket.destroy();
      await master.waitForLogins(loginsBefore + 1, 30_000);
      const hostileMs = floodStopped - cutAt;
      expect(floodStopped).toBeGreaterThan(0);

      report(
        'pb',
        run,
        watch,
        fuzzMs,
        `endless list before the login: dropped and logged in again ${((master.lastLoginAt - cutAt) / 1000).toFixed(1)} s after the cut`,
      );
      expect(run.frames).toBeGreaterThanOrEqual(REAL_FRAMES);
      expect(hostileMs).toBeLessThan(ANSWER_BOUND_MS + 3000);
      checkAgent(run, watch, master);
    },
    170_000,
  );

  it.concurrent(
    'msgpack',
    async () => {
      const rng = new Rng(SEED + 1);
      const requests = mpRequests(mpCorpus);
      const strings = stringsOf(requests);
      const pick = weighted(requests, (m) => m['command_name'] === 'shell', rng);
      const ops = [...new Set(requests.map((m) => String(m['op'])))].concat(['keepalive', 'interrupt_command', 'bogus', '__proto__', '']);
      const master = await FuzzMsgpackMaster.start({ deflate: true });

      cleanups.push(() => master.close());
      const { worker, watch } = await startAgent('msgpack', master.port);
      await master.waitForLogins(1, 30_000);
      const run = newRun();
      const started = Date.now();

      await pump(master, run, REAL_FRAMES, () => {
        let msg: unknown = { ...pick() };
        for (let k = 1 + rng.int(3); k > 0; k--) msg = mutateValue(msg, rng, strings);
        // the envelope stays readable, so that every frame can be answered: a request, never a response
        const body =
          typeof msg === 'object' && msg !== null && !Array.isArray(msg) && !(msg instanceof Uint8Array) ? (msg as Record<string, unknown>) : { args: msg };
        let op = body['op'];
        if (typeof op !== 'string' || op === 'response' || op === 'shutdown' || rng.chance(0.03)) op = rng.pick(ops);
        const out: Record<string, unknown> = { ...body, op };
        delete out['seq_number'];
        return { what: `msgpack ${String(op)} frame ${run.frames}`, send: () => master.current?.request(out) };
      });
      const fuzzMs = Date.now() - started;

      const seqd =
        (build: (seq: number) => Uint8Array): (() => Promise<Outcome> | undefined) =>
        () => {
          const c = master.current!;
          const seq = c.takeSeq();
          return c.requestRaw(build(seq), seq);
        };
      /** {op, seq_number} first, then `args` as raw bytes (a map of 3 entries). */
      const envelopeThen = (op: string, seq: number, args: Buffer): Buffer => {
        const head = Buffer.from(mpEncode({ op, seq_number: seq }));
        head[0] = 0x83;
        return Buffer.concat([head, Buffer.from(mpEncode('args')), args]);
      };
      // Over the limits, with the envelope readable: error answers, the link kept.
      await single(
        master,
        run,
        `more than ${MAX_MESSAGE_VALUES} values`,
        'answer',
        seqd((seq) => {
          const n = MAX_MESSAGE_VALUES + 1;
          const head = Buffer.alloc(5);
          head[0] = 0xdd;
          head.writeUInt32BE(n, 1);
          return envelopeThen('start_command', seq, Buffer.concat([head, Buffer.alloc(n, 0x90)]));
        }),
      );
      await single(
        master,
        run,
        `nesting deeper than ${MAX_NESTING}`,
        'answer',
        seqd((seq) => envelopeThen('print', seq, Buffer.concat([Buffer.alloc(MAX_NESTING + 5, 0x91), Buffer.from([0xc0])]))),
      );
      await single(
        master,
        run,
        'a str32 claiming 4 GiB',
        'answer',
        seqd((seq) => envelopeThen('print', seq, Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]))),
      );
      await single(
        master,
        run,
        'an array32 claiming 4 G entries',
        'answer',
        seqd((seq) => envelopeThen('print', seq, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]))),
      );
      // Nothing says whose request it is, or the WebSocket stream itself is broken: dropped, then reconnected.
      const dropped = (what: string, send: (c: NonNullable<typeof master.current>) => void): Promise<Outcome['kind']> =>
        single(master, run, what, 'closed', () => {
          const c = master.current!;
          const closed = c.closedOutcome();
          send(c);
          return closed;
        });
      await dropped('undecodable, no envelope', (c) => c.ws.send(Buffer.from([0xc1]), { compress: false }));
      await dropped('a text message', (c) => c.ws.send('{"op": "print"}'));
      await dropped(`a message over ${MAX_MESSAGE_BYTES} bytes`, (c) => c.ws.send(Buffer.alloc(MAX_MESSAGE_BYTES + 1), { compress: false }));
      await dropped('a reserved opcode', (c) => c.tcp.write(Buffer.from([0x83, 0x00])));

      // Deflate bombs: 256 MiB of zeros, about 256 KiB on the wire. Inflated to their end (the compression context
      // must survive) but not kept: the one that names its request (seq_number last, as the 3.7 master writes it)
      // gets an error answer, the one that names none is ignored; the link stays.
      const zeros = function* (bytes: number): Generator<Uint8Array> {
        const block = Buffer.alloc(MiB);
        for (let i = 0; i < bytes / MiB; i++) yield block;
      };
      await master.waitReady(ANSWER_BOUND_MS * 2);
      const link = master.current!;
      const bombSeq = link.takeSeq();
      const bomb = await compressedFrame([
        Buffer.concat([
          Buffer.from([0x83]),
          Buffer.from(mpEncode('op')),
          Buffer.from(mpEncode('print')),
          Buffer.from(mpEncode('message')),
          Buffer.from([0xc6, 0x10, 0, 0, 0]),
        ]),
        ...zeros(256 * MiB),
        Buffer.concat([Buffer.from(mpEncode('seq_number')), Buffer.from(mpEncode(bombSeq))]),
      ]);
      const bare = await compressedFrame(zeros(256 * MiB));
      let at = Date.now();
      const bombAnswer = await single(master, run, `a deflate bomb naming its request: ${bomb.length} bytes on the wire`, 'answer', () =>
        link.requestFrame(bomb, bombSeq),
      );
      if (bombAnswer !== 'error') run.violations.push(`a deflate bomb naming its request: expected an error answer, got ${bombAnswer}`);
      const answeredMs = Date.now() - at;
      at = Date.now();
      await single(master, run, `a deflate bomb naming no request: ${bare.length} bytes on the wire, then a print`, 'answer', () => {
        link.requestFrame(bare, undefined);
        return link.request({ op: 'print', message: 'after the bomb' });
      });
      const ignoredMs = Date.now() - at;
      if (master.current !== link) run.violations.push('a deflate bomb cost the connection');
      const bombs = `deflate bombs (${(bomb.length / 1024).toFixed(0)} KiB on the wire, 256 MiB inflated): answered in ${answeredMs} ms, ignored and the next request answered in ${ignoredMs} ms, ${master.current === link ? 'same connection' : 'connection lost'}`;

      report('msgpack', run, watch, fuzzMs, `websocket extensions: ${/websocket extensions: (.*)/.exec(worker.output)?.[1] ?? 'none'}; ${bombs}`);
      expect(run.frames).toBeGreaterThanOrEqual(REAL_FRAMES);
      checkAgent(run, watch, master);
    },
    170_000,
  );
});

// ---- in process ----

function makeBot(basedir: string): Worker {
  return new Worker({
    env: { basedir, platform: currentPlatform(), logger: silentLogger, environ: {}, now: () => Date.now() / 1000 },
    // no commands: the fuzz is about the protocol layers; startCommand ends in an UnknownCommand error answer
    commands: [],
    collectInfo: async () => ({ basedir }),
    logger: silentLogger,
    onShutdownRequest: () => {},
  });
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

interface InProcessStats {
  frames: number;
  answered: number;
  closed: number;
  noRequest: number;
  desynced: number;
  slowestMs: number;
  violations: string[];
}

function inProcessStats(): InProcessStats {
  return { frames: 0, answered: 0, closed: 0, noRequest: 0, desynced: 0, slowestMs: 0, violations: [] };
}

/** One PB connection in this process, after the dialect and the builder list (the login itself is skipped). */
class PbHarness {
  readonly broker: Broker;
  closed = false;
  /** Request ids the agent answered (answer or error). */
  readonly answered = new Set<number>();
  private readonly out = new BananaDecoder(null);

  constructor(basedir: string, builderListArgs: Sexp) {
    const worker = new PbWorker({ worker: makeBot(basedir), logger: silentLogger });
    this.broker = new Broker({
      send: (d) => this.output(d),
      close: () => (this.closed = true),
      logger: silentLogger,
      describeError: describePbError,
    });
    this.broker.receive(dialectOffer());
    this.broker.serialize(worker.mind);
    this.broker.receive(encode([atom('message'), 1, 1, Buffer.from('setBuilderList'), 1, builderListArgs, [atom('dictionary')]]));
  }

  private output(d: Buffer): void {
    for (const e of this.out.feed(d)) this.expression(e);
    if (this.out.dialect === null) return;
    for (const e of this.out.feed()) this.expression(e);
  }

  private expression(e: Sexp): void {
    if (this.out.dialect === null) {
      this.out.selectDialect('pb');
      return;
    }
    if (Array.isArray(e) && (text(e[0]) === 'answer' || text(e[0]) === 'error') && typeof e[1] === 'number') this.answered.add(e[1]);
  }
}

/** The request ids in `bytes` that need an answer: complete message expressions with the answer flag set. */
function pbRequestIds(bytes: Buffer): { ids: number[]; complete: boolean } {
  const d = new BananaDecoder('pb');
  let exprs: Sexp[];
  try {
    exprs = d.feed(bytes);
  } catch {
    return { ids: [], complete: false };
  }
  const ids: number[] = [];
  for (const e of exprs) {
    if (!Array.isArray(e) || e.length !== 7) continue;
    const cmd = text(e[0]);
    if ((cmd === 'message' || cmd === 'cachemessage') && typeof e[1] === 'number' && Number.isInteger(e[1]) && e[4] !== 0 && Buffer.isBuffer(e[3]))
      ids.push(e[1]);
  }
  return { ids, complete: true };
}

/** One msgpack session in this process, over an in-memory WebSocket. */
class FakeWs extends EventEmitter {
  binaryType = 'nodebuffer';
  bufferedAmount = 0;
  readonly answered = new Set<number>();
  closedWith: number | undefined;
  send(data: Uint8Array): void {
    const m = mpDecode(data) as Record<string, unknown>;
    if (m['op'] === 'response' && typeof m['seq_number'] === 'number') this.answered.add(m['seq_number']);
  }
  close(code?: number): void {
    this.end(code ?? 1000);
  }
  terminate(): void {
    this.end(1006);
  }
  ping(): void {}
  private end(code: number): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = code;
    this.emit('close', code, Buffer.alloc(0));
  }
}

describe('protocol fuzz in process', () => {
  it('pb: byte- and structure-mutated frames through Banana, the broker and the worker objects', async () => {
    const rng = new Rng(SEED + 2);
    const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fuzz-inproc-pb-'));
    const builderList = pbBuilderListArgs(pbCorpus);
    const requests = pbRequests(pbCorpus);
    const strings = stringsOf(requests);
    const stats = inProcessStats();
    let h = new PbHarness(basedir, builderList);
    let probeId = 1_000_000_000;
    for (let i = 0; i < IN_PROCESS_FRAMES; i++) {
      const base = rng.pick(requests);
      const reqId = 10 + i;
      let sexp: Sexp = [base[0]!, reqId, ...base.slice(2)];
      if (rng.chance(0.3)) sexp = mutateSexp(sexp, rng, strings);
      let bytes: Buffer;
      try {
        bytes = encode(sexp);
      } catch {
        bytes = encode([base[0]!, reqId, ...base.slice(2)]);
      }
      if (rng.chance(0.8)) bytes = mutateBytes(bytes, rng);
      const { ids } = pbRequestIds(bytes);
      const t0 = performance.now();
      try {
        h.broker.receive(bytes);
      } catch (err) {
        stats.violations.push(`frame ${i}: receive() threw ${(err as Error).message}`);
      }
      stats.slowestMs = Math.max(stats.slowestMs, performance.now() - t0);
      await tick();
      await tick();
      stats.frames++;
      if (h.closed) {
        stats.closed++;
        h = new PbHarness(basedir, builderList);
        continue;
      }
      const missing = ids.filter((id) => !h.answered.has(id));
      if (missing.length) stats.violations.push(`frame ${i}: requests ${missing.join(', ')} decoded but neither answered nor the connection closed`);
      if (ids.length) stats.answered++;
      else stats.noRequest++;
      // is the stream still in step? a well-formed request must be answered next
      const probe = ++probeId;
      h.broker.receive(
        encode([atom('message'), probe, 1, Buffer.from('print'), 1, [atom('tuple'), [atom('unicode'), Buffer.from('probe')]], [atom('dictionary')]]),
      );
      if (!h.closed && !h.answered.has(probe)) {
        // the frame declared more bytes than it had: the real agent waits for them, as any stream reader must
        stats.desynced++;
        h = new PbHarness(basedir, builderList);
      } else if (h.closed) {
        stats.closed++;
        h = new PbHarness(basedir, builderList);
      }
    }
    console.log(
      `pb in process: ${stats.frames} frames: ${stats.answered} held requests (all answered), ${stats.noRequest} held none, ${stats.closed} closed the connection, ` +
        `${stats.desynced} left the stream waiting for more bytes; slowest receive() ${stats.slowestMs.toFixed(1)} ms`,
    );
    expect(stats.violations.slice(0, 20)).toEqual([]);
    expect(stats.slowestMs).toBeLessThan(STALL_LIMIT_MS);
    expect(stats.frames).toBe(IN_PROCESS_FRAMES);
  }, 120_000);

  it('msgpack: byte- and structure-mutated frames through the scan, the decoder and the session', async () => {
    const rng = new Rng(SEED + 3);
    const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fuzz-inproc-mp-'));
    const requests = mpRequests(mpCorpus).concat(mpCorpus.messages.filter((m) => m['op'] === 'response'));
    const strings = stringsOf(requests);
    const stats = inProcessStats();
    const worker = makeBot(basedir);
    const open = (): { ws: FakeWs; session: MsgpackSession } => {
      const ws = new FakeWs();
      return { ws, session: new MsgpackSession(ws as unknown as WebSocket, worker, silentLogger, { attachTimeoutMs: 3_600_000 }) };
    };
    let s = open();
    for (let i = 0; i < IN_PROCESS_FRAMES; i++) {
      let msg: unknown = { ...rng.pick(requests), seq_number: 10 + i };
      if (rng.chance(0.3)) msg = mutateValue(msg, rng, strings);
      let bytes: Buffer = Buffer.from(mpEncode(msg));
      if (rng.chance(0.8)) bytes = mutateBytes(bytes, rng);
      // what a correct reader makes of it: a request (op other than response, integer seq) must be answered
      let seq: number | undefined;
      try {
        const m = mpDecode(bytes) as Record<string, unknown>;
        if (typeof m === 'object' && m !== null && typeof m['op'] === 'string' && m['op'] !== 'response' && Number.isSafeInteger(m['seq_number']))
          seq = m['seq_number'] as number;
      } catch {
        seq = undefined;
      }
      const t0 = performance.now();
      try {
        s.ws.emit('message', bytes, true);
      } catch (err) {
        stats.violations.push(`frame ${i}: the session threw ${(err as Error).message}`);
      }
      stats.slowestMs = Math.max(stats.slowestMs, performance.now() - t0);
      await tick();
      await tick();
      stats.frames++;
      if (s.ws.closedWith !== undefined) {
        stats.closed++;
        s = open();
        continue;
      }
      if (seq !== undefined && !s.ws.answered.has(seq)) stats.violations.push(`frame ${i}: request ${seq} neither answered nor the connection closed`);
      if (seq !== undefined) stats.answered++;
      else stats.noRequest++;
    }
    s.session.close();
    console.log(
      `msgpack in process: ${stats.frames} frames: ${stats.answered} requests (all answered), ${stats.noRequest} no request (answered with an error when they named one), ` +
        `${stats.closed} closed the connection; slowest message ${stats.slowestMs.toFixed(1)} ms`,
    );
    expect(stats.violations.slice(0, 20)).toEqual([]);
    expect(stats.slowestMs).toBeLessThan(STALL_LIMIT_MS);
    expect(stats.frames).toBe(IN_PROCESS_FRAMES);
  }, 120_000);
});
