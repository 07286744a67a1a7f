// Secret canary, against a real Buildbot master on both protocols: unique values in BBAGENT_PASSWORD (the
// worker's password, from the environment only) and BBAGENT_REDACT must appear nowhere: not in step logs
// (a logEnviron header, a step printing its whole environment, a step printing the values it was given, a
// spooled step), not in the worker info the master received, not in the agent's log, not in spool files, not
// in /proc/<pid>/environ of build processes.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BbagentWorker } from '../../scripts/harness/bbagent-worker.js';
import { BuildbotMaster, Results, channelText, findLog, findStep, type BuildResult, type Protocol } from '../../scripts/harness/master.js';
import { descendants, INFO_PROBE_PREAMBLE, type ReceivedInfo } from './helpers/spool-support.js';

const PASSWORD = `canary-pw-${randomBytes(12).toString('hex')}`;
const REDACT = `canary-rd-${randomBytes(12).toString('hex')}`;
const CANARIES = [PASSWORD, REDACT];
/** The agent's variables that carry them. */
const NAMES = ['BBAGENT_PASSWORD', 'BBAGENT_REDACT'];

/** Every place a canary occurs in `text`, with a little context, for the failure message. */
function hits(text: string): string[] {
  const out: string[] = [];
  for (const c of CANARIES) {
    for (let i = text.indexOf(c); i >= 0; i = text.indexOf(c, i + 1)) out.push(JSON.stringify(text.slice(Math.max(0, i - 60), i + c.length + 20)));
  }
  return out;
}

const sh = (script: string): string => `['sh', '-c', ${JSON.stringify(script)}]`;
/** The step gets the canaries from the master, as a build would get any secret, and prints them. */
const LEAK_ENV = JSON.stringify({ LEAK_PW: PASSWORD, LEAK_RD: REDACT });
const LEAK_SCRIPT = 'echo "pw=$LEAK_PW rd=$LEAK_RD"; printf %s "$LEAK_PW" | head -c 12; sleep 0.3; printf %s "$LEAK_PW" | tail -c +13; echo';
const BUDGET = { BBAGENT_OUTPUT_RATE: '16k', BBAGENT_OUTPUT_BURST: '16k', BBAGENT_OUTPUT_POLICY: 'spool' };

const protocols: Protocol[] = ['msgpack', 'pb'];

describe.each(protocols)('secret canary over %s', (protocol) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `bbagent-secrets-${protocol}-`));
  let master: BuildbotMaster;
  let bb: BbagentWorker;
  const builds: BuildResult[] = [];

  beforeAll(async () => {
    master = await BuildbotMaster.start({
      dir: path.join(scratch, 'master'),
      protocol,
      workers: [{ name: 'bb', password: PASSWORD }],
      builders: [
        {
          name: 'envdump',
          workernames: ['bb'],
          steps: `[steps.ShellCommand(name='envdump', command=${sh("env; echo; tr '\\000' '\\n' < /proc/self/environ")})]`,
        },
        { name: 'leak', workernames: ['bb'], steps: `[steps.ShellCommand(name='leak', command=${sh(LEAK_SCRIPT)}, env=${LEAK_ENV})]` },
        {
          name: 'spooled',
          workernames: ['bb'],
          steps: `[steps.ShellCommand(name='spooled', command=${sh(`${LEAK_SCRIPT}; od -An -tx1 -N 60000 /dev/urandom; ${LEAK_SCRIPT}`)}, env=${JSON.stringify({ ...JSON.parse(LEAK_ENV), ...BUDGET })}, logEnviron=False)]`,
        },
        { name: 'sleeper', workernames: ['bb'], steps: `[steps.ShellCommand(name='sleeper', command=${sh('echo started; sleep 60')}, logEnviron=False)]` },
        { name: 'info', workernames: ['bb'], steps: `[ReceivedInfoProbe(name='info')]` },
      ],
      pythonPreamble: INFO_PROBE_PREAMBLE,
    });
    // create-worker writes another password to bbagent.json: the real one comes only from the environment
    bb = await BbagentWorker.start({
      dir: path.join(scratch, 'bb'),
      masterPort: master.protocolPort,
      name: 'bb',
      password: 'not-the-password',
      protocol,
      env: { BBAGENT_PASSWORD: PASSWORD, BBAGENT_REDACT: REDACT },
    });
    await master.waitForWorker('bb');
  });

  afterAll(async () => {
    await bb?.stop();
    await master?.stop();
  });

  it('0 hits in step logs: logEnviron header, a whole-environment dump, printed values, a spooled step', async () => {
    for (const name of ['envdump', 'leak', 'spooled']) builds.push(await master.runBuild(name, 60_000));
    for (const b of builds) {
      expect(b.results).toBe(Results.SUCCESS);
      for (const s of b.steps) for (const l of s.logs) expect(hits(l.content), `${s.name}/${l.name}`).toEqual([]);
    }
    const env = findLog(findStep(builds[0]!, 'envdump'));
    // the dumps are there (the check is not vacuous), without the agent's variables
    expect(channelText(env, 'h')).toMatch(/ environment:\n(  .*\n)*  PATH=/);
    expect(channelText(env, 'o')).toMatch(/^PATH=/m);
    for (const n of NAMES) expect(env.content).not.toContain(n);
    // printed values are redacted, also when one write holds only part of it
    expect(channelText(findLog(findStep(builds[1]!, 'leak')), 'o')).toBe('pw=<redacted> rd=<redacted>\n<redacted>\n');
    expect(channelText(findLog(findStep(builds[1]!, 'leak')), 'h')).toContain('  LEAK_PW=<redacted>\n');
  });

  it('0 hits in the spool files', () => {
    const dir = path.join(bb.dir, 'spool');
    const files = readdirSync(dir).filter((f) => f.endsWith('.log.gz'));
    expect(files.length).toBeGreaterThan(0);
    const texts = files.map((f) => gunzipSync(readFileSync(path.join(dir, f))).toString());
    expect(texts.some((t) => t.includes('pw=<redacted> rd=<redacted>'))).toBe(true);
    for (const t of texts) expect(hits(t)).toEqual([]);
  });

  it('0 hits in the worker info the master received and stored', async () => {
    const build = await master.runBuild('info');
    const raw = findLog(findStep(build, 'info'), 'info').content.replace(/\n/g, '');
    const got = JSON.parse(raw) as ReceivedInfo;
    expect(got.environ['PATH']).toBeDefined();
    for (const n of NAMES) expect(Object.keys(got.environ)).not.toContain(n);
    expect(hits(raw)).toEqual([]);
    expect(hits(JSON.stringify(await master.worker('bb')))).toEqual([]);
  });

  it('0 hits in /proc/<pid>/environ of build processes', async () => {
    const brid = await master.forceBuild('sleeper');
    const buildid = await master.waitForBuildStarted(brid);
    await master.waitForLogText(buildid, 'sleeper', /started/);
    const environs = descendants(bb.pid).flatMap((pid) => {
      try {
        return [readFileSync(`/proc/${pid}/environ`, 'latin1')];
      } catch {
        return []; // exited meanwhile
      }
    });
    expect(environs.length).toBeGreaterThanOrEqual(2); // sh and sleep
    for (const e of environs) {
      expect(e).toContain('PWD=');
      expect(hits(e)).toEqual([]);
      for (const n of NAMES) expect(e).not.toContain(`${n}=`);
    }
    await master.stopBuild(buildid);
    await master.waitForBuild(brid);
  });

  it("0 hits in the agent's log (its output and bbagent.log)", () => {
    const logFile = readFileSync(path.join(bb.dir, 'bbagent.log'), 'utf8');
    expect(logFile).toMatch(/Connected to/);
    expect(hits(logFile)).toEqual([]);
    expect(hits(bb.output)).toEqual([]);
  });
});
