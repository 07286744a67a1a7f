// How a real Buildbot 3.7 master stores a fast step's log, read from its database: with bbagent's aligned
// batching every stored chunk is one the master cut itself (under 64 KiB of text), so its end-of-log compaction
// merged and re-gzipped nothing; with buildbot-worker's batching sized by text (what PB carries, bbagent's
// `outputBatching: reference`), updates end a little over 64 KiB once the master adds its channel characters,
// and compaction merges the short chunks they leave into their neighbours. Both logs are the same text.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep } from '../../scripts/harness/master.js';

const PASSWORD = 'pw-log-chunks';
/** 40,000 lines of 80-odd bytes (3.4 MiB), as fast as awk writes them. */
const SPEW_AWK = `BEGIN{for(i=0;i<40000;i++) printf "spew %06d ${'z'.repeat(70)}\\n", i}`;
const spewStep = `[steps.ShellCommand(name='spew', command=['awk', ${JSON.stringify(SPEW_AWK)}], logEnviron=False)]`;
/** A sustained trickle: 160 lines of 127 bytes (20 KiB) every 100 ms for 3 s. */
const TRICKLE_PY = [
  'import sys, time',
  'for w in range(30):',
  "    sys.stdout.write(''.join('trickle %06d %s\\n' % (w * 160 + i, 'y' * 112) for i in range(160)))",
  '    sys.stdout.flush()',
  '    time.sleep(0.1)',
].join('\n');
const trickleStep = `[steps.ShellCommand(name='trickle', command=['/usr/bin/python3', '-c', ${JSON.stringify(TRICKLE_PY)}], logEnviron=False)]`;

/** The stored chunks of one log: [first_line, last_line, decompressed bytes], from the master's sqlite database. */
const CHUNKS_PY = `
import bz2, json, sqlite3, sys, zlib
db = sqlite3.connect(sys.argv[1])
rows = db.execute('select first_line, last_line, content, compressed from logchunks where logid=? order by first_line', (int(sys.argv[2]),))
read = {0: lambda b: b, 1: lambda b: zlib.decompress(b), 2: bz2.decompress}
print(json.dumps([[f, l, len(read[c](bytes(content)))] for f, l, content, c in rows]))
`;

function storedChunks(master: BuildbotMaster, logid: number): [number, number, number][] {
  const out = execFileSync('/usr/bin/python3', ['-c', CHUNKS_PY, path.join(master.dir, 'state.sqlite'), String(logid)], { encoding: 'utf8' });
  return JSON.parse(out) as [number, number, number][];
}

describe('stored log chunks on a real master (PB)', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-chunks-'));
  let master: BuildbotMaster;
  const workers: BbagentWorker[] = [];

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol: 'pb',
      workers: [
        { name: 'aligned', password: PASSWORD },
        { name: 'reference', password: PASSWORD },
      ],
      builders: [
        { name: 'aligned', workernames: ['aligned'], steps: spewStep },
        { name: 'reference', workernames: ['reference'], steps: spewStep },
        { name: 'trickle', workernames: ['aligned'], steps: trickleStep },
      ],
    });
    for (const [name, batching] of [
      ['aligned', 'aligned'],
      ['reference', 'reference'],
    ] as const) {
      workers.push(
        await BbagentWorker.start({
          dir: path.join(scratch, name),
          masterPort: master.protocolPort,
          name,
          password: PASSWORD,
          protocol: 'pb',
          env: { BBAGENT_OUTPUT_BATCHING: batching },
        }),
      );
      await master.waitForWorker(name);
    }
  });

  afterAll(async () => {
    for (const w of workers) await w.stop();
    await master?.stop();
  });

  it('aligned batching leaves nothing for compaction to merge; reference batching by text does', async () => {
    const expected = execFileSync('awk', [SPEW_AWK], { maxBuffer: 64 * 1024 * 1024 }).toString();
    const stored: Record<string, [number, number, number][]> = {};
    for (const name of ['aligned', 'reference']) {
      const build = await master.runBuild(name, 120_000);
      expect(build.results).toBe(Results.SUCCESS);
      const log = findLog(findStep(build, 'spew'));
      expect(channelText(log, 'o')).toBe(expected);
      stored[name] = storedChunks(master, log.logid);
    }
    const aligned = stored['aligned']!;
    const reference = stored['reference']!;
    // A chunk the master cut holds less than 64 KiB; one compaction merged holds more. The step's first lines
    // (headers, then the first output after 0.25 s) and its last ones (the end of output, `program finished`)
    // are short appends that compaction merges with either batching; a batch the latency bound sends before its
    // last chunk filled up (the step paused, or the host is slow) leaves one short chunk more.
    const merged = (chunks: [number, number, number][]) => chunks.filter(([, , bytes]) => bytes >= 65536);
    const short = (chunks: [number, number, number][]) => chunks.filter(([, , bytes]) => bytes < 65536 - 200);
    console.log(
      `stored chunks: aligned ${aligned.length} (${merged(aligned).length} merged, ${short(aligned).length} short), ` +
        `reference ${reference.length} (${merged(reference).length} merged, ${short(reference).length} short)`,
    );
    expect(merged(aligned).length).toBeLessThanOrEqual(4);
    expect(short(aligned).length).toBeLessThanOrEqual(6);
    expect(merged(reference).length).toBeGreaterThan(10);
  });

  it('a sustained trickle: the stored log is the text written, in whole chunks (held back until two periods old)', async () => {
    const expected = execFileSync('/usr/bin/python3', ['-c', TRICKLE_PY.replace('time.sleep(0.1)', 'pass')]).toString();
    const build = await master.runBuild('trickle', 60_000);
    expect(build.results).toBe(Results.SUCCESS);
    const log = findLog(findStep(build, 'trickle'));
    expect(channelText(log, 'o')).toBe(expected);
    const chunks = storedChunks(master, log.logid);
    // the headers, the first output (after 0.25 s) and the end of the output are short appends; every update
    // in between ends on a chunk boundary, so nothing else is short or merged
    const short = chunks.filter(([, , bytes]) => bytes < 65536 - 200);
    const merged = chunks.filter(([, , bytes]) => bytes >= 65536);
    console.log(`trickle: ${chunks.length} stored chunks, ${short.length} short, ${merged.length} merged`);
    expect(short.length + merged.length).toBeLessThanOrEqual(3);
    expect(chunks.length).toBeGreaterThanOrEqual(7);
  });
});
