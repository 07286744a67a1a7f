// The protocol fuzz's seed corpus: what a real Buildbot 3.7 master sends to bbagent during a session, recorded
// in the test through the fault proxy (master -> agent bytes) and split into messages: Banana expressions for
// PB, WebSocket messages (msgpack maps) for msgpack. The build runs only commands that read or print (shell
// echo/printf, stat, glob, listdir, uploads), so that mutated copies cannot remove or overwrite anything.
import { decode } from '@msgpack/msgpack';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Sexp } from '../../../agent/connection/pb/banana.js';
import { BananaDecoder } from '../../../agent/connection/pb/banana-decoder.js';
import { BbagentWorker } from '../../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, type Protocol } from '../../../scripts/harness/master.js';
import { PYTHON_PREAMBLE } from '../../integration/scenarios.js';
import { FaultProxy } from './tcp-proxy.js';

export const FUZZ_WORKER = 'fz';
export const FUZZ_PASSWORD = 'pw';

export interface PbCorpus {
  /** Every expression the master sent after the dialect offer, in order. */
  expressions: Sexp[];
}

export interface MsgpackCorpus {
  /** Every binary message the master sent, decoded. */
  messages: Record<string, unknown>[];
}

function steps(masterDir: string): string {
  return String.raw`[
    steps.ShellCommand(name='hello', command='echo hello; echo oops >&2', env={'FUZZ': 'yes', 'LIST': ['a', 'b']}, logEnviron=False),
    steps.ShellCommand(name='argv', command=['printf', '%s\n', 'a b', 'c'], logEnviron=False, timeout=60, maxTime=120, sigtermTime=1),
    steps.ShellCommand(name='write', command='mkdir -p wd && printf "x\\ny\\n" > wd/up.txt', logEnviron=False),
    FsProbe(name='probe', ops=[('glob', '*'), ('stat', 'wd/up.txt'), ('listdir', 'wd')]),
    steps.FileUpload(name='up', workersrc='wd/up.txt', masterdest='${masterDir}/up.txt'),
    steps.DirectoryUpload(name='dirup', workersrc='wd', masterdest='${masterDir}/dirup'),
  ]`;
}

/** Runs one recorded build of a real master with bbagent; returns the bytes the master sent. */
async function record(protocol: Protocol): Promise<Buffer> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-fuzzrec-${protocol}-`));
  const masterDir = path.join(scratch, 'master');
  const master = await BuildbotMaster.start({
    dir: masterDir,
    protocol,
    workers: [{ name: FUZZ_WORKER, password: FUZZ_PASSWORD }],
    builders: [{ name: 'fuzzrec', workernames: [FUZZ_WORKER], steps: steps(masterDir) }],
    pythonPreamble: PYTHON_PREAMBLE,
  });
  const proxy = await FaultProxy.start(master.protocolPort, { record: true });
  let worker: BbagentWorker | undefined;
  try {
    worker = await BbagentWorker.start({ dir: path.join(scratch, 'agent'), masterPort: proxy.port, name: FUZZ_WORKER, password: FUZZ_PASSWORD, protocol });
    await master.waitForWorker(FUZZ_WORKER);
    const build = await master.runBuild('fuzzrec', 60_000);
    if (build.results !== Results.SUCCESS) throw new Error(`the recorded ${protocol} build ended with result ${build.results}`);
  } finally {
    await worker?.stop();
    await master.stop();
    await proxy.close();
  }
  const link = proxy.links[0];
  if (!link) throw new Error(`no ${protocol} connection went through the recording proxy`);
  return Buffer.concat(link.fromMaster);
}

export async function recordPbCorpus(): Promise<PbCorpus> {
  const bytes = await record('pb');
  const decoder = new BananaDecoder(null);
  const [offer] = decoder.feed(bytes);
  if (!Array.isArray(offer)) throw new Error('the recorded PB session does not start with a dialect offer');
  decoder.selectDialect('pb');
  return { expressions: decoder.feed() };
}

/** The binary messages of a server's side of a WebSocket connection (after the HTTP response; frames unmasked). */
export function splitWebSocketStream(bytes: Buffer): Buffer[] {
  const start = bytes.indexOf('\r\n\r\n');
  if (start < 0) throw new Error('no HTTP response at the start of the recorded WebSocket stream');
  let pos = start + 4;
  const messages: Buffer[] = [];
  let parts: Buffer[] = [];
  while (pos + 2 <= bytes.length) {
    const b0 = bytes[pos]!;
    const b1 = bytes[pos + 1]!;
    let len = b1 & 0x7f;
    let at = pos + 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at);
      at += 2;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(at));
      at += 8;
    }
    if (b1 & 0x80) throw new Error('a masked frame from the master');
    if (at + len > bytes.length) break;
    const opcode = b0 & 0x0f;
    if (b0 & 0x40) throw new Error('the recorded master compressed a message (it should not have accepted permessage-deflate)');
    if (opcode === 0x2 || opcode === 0x0) {
      parts.push(bytes.subarray(at, at + len));
      if (b0 & 0x80) {
        messages.push(Buffer.concat(parts));
        parts = [];
      }
    }
    pos = at + len;
  }
  return messages;
}

export async function recordMsgpackCorpus(): Promise<MsgpackCorpus> {
  const bytes = await record('msgpack');
  return { messages: splitWebSocketStream(bytes).map((m) => decode(m) as Record<string, unknown>) };
}
