// The agent's own secrets stay out of builds and off the master: its BBAGENT_* variables are not in the
// environment builds start from (nor in the worker info's `environ`), and the worker password is redacted
// from build output when it is long enough to be told apart from ordinary text.
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildEnviron } from '../../agent/agent.js';
import { MIN_REDACTED_PASSWORD_LENGTH, outputSetupFromConfig } from '../../agent/output/setup.js';
import { CONFIG_DEFAULTS, type AgentConfig } from '../../agent/config/schema.js';
import { CommandOutput } from '../../agent/output/command-output.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import type { UpdateItem } from '../../agent/output/types.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const config = (password: string): AgentConfig =>
  ({ ...CONFIG_DEFAULTS, basedir: os.tmpdir(), masterHost: 'localhost', masterPort: 9989, name: 'w', password }) as unknown as AgentConfig;

/** What a pipeline with these options sends for `chunks` (stdout), flattened. */
async function sent(redact: readonly string[], chunks: string[]): Promise<UpdateItem[]> {
  const messages: UpdateItem[][] = [];
  const opts = outputSetupFromConfig({ ...config(''), redact: [...redact] }, os.tmpdir(), null).options;
  const out = new CommandOutput(
    defaultOutputSettings(),
    opts,
    (m) => messages.push(m),
    () => 1000,
  );
  for (const c of chunks) out.text('stdout', c);
  out.status('rc', 0);
  await out.finish();
  return messages.flat();
}

describe("the agent's secrets", () => {
  it('no BBAGENT_* variable reaches the environment builds start from (any case), the rest does', () => {
    const env = buildEnviron({
      PATH: '/usr/bin',
      HOME: '/home/w',
      BBAGENT_PASSWORD: 'hunter2-long',
      BBAGENT_REDACT: 'token',
      BBAGENT_MASTER_HOST: 'm',
      Bbagent_Password: 'x',
      MY_BBAGENT_NOTE: 'kept',
      EMPTY: undefined,
    });
    expect(env).toEqual({ PATH: '/usr/bin', HOME: '/home/w', MY_BBAGENT_NOTE: 'kept' });
  });

  it('the worker password is in the redaction set', () => {
    const logger = new RecordingLogger();
    const pw = 'correct-horse-battery';
    expect(outputSetupFromConfig(config(pw), os.tmpdir(), null, logger).options.redact).toContain(pw);
    expect(logger.lines).toEqual([]);
  });

  it(`a password under ${MIN_REDACTED_PASSWORD_LENGTH} characters is not redacted (it would mangle "pwd", "passed"), with a warning`, () => {
    const logger = new RecordingLogger();
    expect(outputSetupFromConfig(config('pw'), path.join(os.tmpdir()), null, logger).options.redact).toEqual([]);
    expect(logger.lines).toEqual([expect.stringMatching(/^warn the worker password is shorter than 6 characters: it is not redacted/)]);
    expect(outputSetupFromConfig(config('sekrit'), os.tmpdir(), null, logger).options.redact).toEqual(['sekrit']);
  });

  it('redaction changes nothing the master receives when the secret does not occur', async () => {
    // a chunk ending in a prefix of the secret is held back only until the next chunk: the lines, their
    // order and their batching are the same
    const chunks = ['building s', 'ekri\n', 'pwd\nsek', '', 'r', 'et\npartial s'];
    expect(await sent(['sekrit-value'], chunks)).toEqual(await sent([], chunks));
  });
});
