// Runs python3 for tests that hold a port against Python itself: the code reads its argument as JSON from
// sys.argv[1] and prints its answer as JSON.
import { execFileSync } from 'node:child_process';

export function python(code: string, arg: unknown = null): unknown {
  const out = execFileSync('python3', ['-c', `import json, sys\narg = json.loads(sys.argv[1])\n${code}`, JSON.stringify(arg)], { encoding: 'utf8' });
  return JSON.parse(out);
}
