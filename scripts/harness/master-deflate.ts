// The master.cfg snippet (master-deflate.py beside this file, quoted in docs/output.md) that makes Buildbot
// 3.7's msgpack port accept permessage-deflate: the `extraConfig` of the masters that tests and the benchmark
// run with compression.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './bbagent-worker.js';

/** The text of scripts/harness/master-deflate.py, read from the repository (also when this code is bundled). */
export function masterDeflateConfig(): string {
  return readFileSync(path.join(REPO_ROOT, 'scripts', 'harness', 'master-deflate.py'), 'utf8');
}
