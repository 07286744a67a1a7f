// How the agent tells its workers apart in its one log: by name, or name@master where two share a name; every
// line of a worker's message carries the label, and a single worker's log has none.

import { describe, expect, it } from 'vitest';
import { workerConfigs, workerLabels } from '../../agent/agent.js';
import { validateConfig } from '../../agent/config/load.js';
import { labelledLogger } from '../../agent/hosted-worker.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const TOP = { basedir: '/srv/a/w1', masterHost: 'm1.example', masterPort: 9989, name: 'w1', password: 'secret-one' };

describe('worker labels', () => {
  it('one worker: its name; several: their names, with the master where a name repeats', () => {
    expect(workerLabels(workerConfigs(validateConfig(TOP, 's', '/srv/a')))).toEqual(['w1']);
    const config = validateConfig(
      {
        ...TOP,
        workers: [
          { basedir: '/srv/a/w2', name: 'w2' },
          { basedir: '/srv/a/w3', masterHost: 'm2.example' },
        ],
      },
      's',
      '/srv/a',
    );
    expect(workerLabels(workerConfigs(config))).toEqual(['w1@m1.example:9989', 'w2', 'w1@m2.example:9989']);
  });

  it('every line of a message carries the label, at every level', () => {
    const logger = new RecordingLogger();
    const w2 = labelledLogger(logger, 'w2');
    w2.info('Connected to m:9989');
    w2.warn('two\nlines');
    w2.error('bad');
    expect(logger.lines).toEqual(['info [w2] Connected to m:9989', 'warn [w2] two\n[w2] lines', 'error [w2] bad']);
  });
});
