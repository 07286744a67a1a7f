// Reads a buildbot-worker buildbot.tac without running it: the statements buildbot-worker's create-worker writes
// (every version's template: imports, the relocatable-basedir block, the log observer, with or without
// try/except ImportError, `NAME = literal` settings and the `Worker(...)` call) are recognised; any other
// statement is refused, naming its line. What the Worker gets is worked out as Python would: each argument of
// the call is a literal or a variable assigned a literal before it.

import { readFileSync } from 'node:fs';
import { AgentError } from '../errors.js';
import { parseLiteral, splitTopLevel, statements, TacSyntaxError, type PyLiteral, type Statement } from './tac-python.js';

export const TAC_FILE = 'buildbot.tac';

/** The parameters of buildbot-worker's Worker (buildbot_worker.pb.Worker), in order. */
export const WORKER_PARAMS = [
  'buildmaster_host',
  'port',
  'name',
  'passwd',
  'basedir',
  'keepalive',
  'usePTY',
  'keepaliveTimeout',
  'umask',
  'maxdelay',
  'numcpus',
  'unicode_encoding',
  'protocol',
  'useTls',
  'allow_shutdown',
  'maxRetries',
  'connection_string',
  'delete_leftover_dirs',
  'proxy_connection_string',
] as const;
export type WorkerParam = (typeof WORKER_PARAMS)[number];

/** A value and the line that gave it. */
export interface TacValue {
  value: PyLiteral;
  line: number;
}

export interface Tac {
  file: string;
  /** The Worker's arguments by parameter name (those the call gave). */
  args: Partial<Record<WorkerParam, TacValue>>;
  /** The module's variables that are literals (rotateLength, maxRotatedFiles, ...). */
  vars: Record<string, TacValue>;
  /** The log observer block (rotateLength, maxRotatedFiles) is there: twistd.log is rotated by the tac. */
  logRotation: boolean;
}

/** Statements create-worker writes that carry no setting, compared without blanks and with one kind of quote. */
const BOILERPLATE = new Set(
  [
    "application = service.Application('buildbot-worker')",
    'logfile = LogFile.fromFullPath(os.path.join(basedir, "twistd.log"), rotateLength=rotateLength, maxRotatedFiles=maxRotatedFiles)',
    'application.setComponent(ILogObserver, FileLogObserver(logfile).emit)',
    'try:',
    'except ImportError:',
    'pass',
  ].map(normal),
);
const LOG_OBSERVER = normal('logfile = LogFile.fromFullPath(os.path.join(basedir, "twistd.log"), rotateLength=rotateLength, maxRotatedFiles=maxRotatedFiles)');
const RELOCATABLE_IF = normal("if basedir == '.':");
const RELOCATABLE_BODY = new Set(['import os.path', 'basedir = os.path.abspath(os.path.dirname(__file__))'].map(normal));
/** Modules a tac imports; an import of anything else is code bbagent would not run. */
const IMPORTS = new Set(['os', 'os.path', 'buildbot_worker.bot', 'twisted.application', 'twisted.python.logfile', 'twisted.python.log']);

function normal(code: string): string {
  return code.replace(/\s+/g, '').replace(/"/g, "'");
}

function refuse(file: string, s: { line: number; code?: string }, reason: string): AgentError {
  const code = s.code !== undefined ? `: ${JSON.stringify(s.code.length > 80 ? `${s.code.slice(0, 77)}...` : s.code)}` : '';
  return new AgentError(
    'E_TAC',
    `${file} line ${s.line}${code}: ${reason}. bbagent reads buildbot.tac without running it and takes only what ` +
      `buildbot-worker's create-worker writes: undo the edit, or give the values to bbagent create-worker`,
  );
}

/** Reads and parses `file`; E_TAC when it cannot be read or holds something that cannot be carried over. */
export function readTac(file: string): Tac {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'not found: is this a buildbot-worker basedir?' : `cannot read: ${(err as Error).message}`;
    throw new AgentError('E_TAC', `${file}: ${why}`);
  }
  return parseTac(text, file);
}

export function parseTac(text: string, file: string): Tac {
  if (!text.includes("Application('buildbot-worker')")) {
    throw new AgentError('E_TAC', `${file}: not a buildbot-worker buildbot.tac (no "Application('buildbot-worker')" in it)`);
  }
  let stmts: Statement[];
  try {
    stmts = statements(text);
  } catch (err) {
    if (err instanceof TacSyntaxError) throw refuse(file, { line: err.line }, err.reason);
    throw err;
  }
  const tac: Tac = { file, args: {}, vars: {}, logRotation: false };
  let worker: { name: string; line: number } | undefined;
  let inRelocatable = false;
  for (const s of stmts) {
    const n = normal(s.code);
    if (s.indent > 0 && inRelocatable) {
      if (!RELOCATABLE_BODY.has(n)) throw refuse(file, s, "not what create-worker writes under if basedir == '.'");
      continue;
    }
    inRelocatable = n === RELOCATABLE_IF;
    if (inRelocatable || BOILERPLATE.has(n)) {
      if (n === LOG_OBSERVER) tac.logRotation = true;
      continue;
    }
    if (readImport(s.code)) continue;
    const call = /^([A-Za-z_]\w*)\s*=\s*Worker\s*\(([\s\S]*)\)$/.exec(s.code);
    if (call) {
      if (worker !== undefined) throw refuse(file, s, `a second Worker (the first is on line ${worker.line})`);
      worker = { name: call[1] as string, line: s.line };
      tac.args = workerArgs(call[2] as string, tac.vars, file, s);
      continue;
    }
    if (worker !== undefined && normal(`${worker.name}.setServiceParent(application)`) === n) continue;
    const assign = /^([A-Za-z_]\w*)\s*=\s*([\s\S]+)$/.exec(s.code);
    const value = assign ? parseLiteral(assign[2] as string) : undefined;
    if (assign && value !== undefined) {
      tac.vars[assign[1] as string] = { value, line: s.line };
      continue;
    }
    throw refuse(file, s, assign ? 'the value is not a Python literal (a string, a number, None, True or False)' : 'not a statement create-worker writes');
  }
  if (worker === undefined) throw new AgentError('E_TAC', `${file}: no "s = Worker(...)" in it: there is no worker to carry over`);
  return tac;
}

/** `import os`, `from twisted.application import service`, ... of the modules a tac imports. */
function readImport(code: string): boolean {
  const m = /^(?:import\s+([\w.]+)|from\s+([\w.]+)\s+import\s+[\w\s,]+)$/.exec(code);
  return m !== null && IMPORTS.has((m[1] ?? m[2]) as string);
}

/** The Worker call's arguments, each resolved to a literal (a variable's value, or the literal itself). */
function workerArgs(text: string, vars: Record<string, TacValue>, file: string, s: Statement): Partial<Record<WorkerParam, TacValue>> {
  const args: Partial<Record<WorkerParam, TacValue>> = {};
  let keywords = false;
  splitTopLevel(text).forEach((arg, i) => {
    const kw = /^([A-Za-z_]\w*)\s*=(?!=)\s*([\s\S]+)$/.exec(arg);
    let param: WorkerParam;
    let expr: string;
    if (kw) {
      keywords = true;
      if (!(WORKER_PARAMS as readonly string[]).includes(kw[1] as string)) throw refuse(file, s, `Worker has no parameter ${kw[1]}`);
      param = kw[1] as WorkerParam;
      expr = kw[2] as string;
    } else {
      if (keywords || i >= WORKER_PARAMS.length) throw refuse(file, s, `Worker's argument ${JSON.stringify(arg)} cannot be placed`);
      param = WORKER_PARAMS[i] as WorkerParam;
      expr = arg;
    }
    if (args[param] !== undefined) throw refuse(file, s, `Worker is given ${param} twice`);
    args[param] = resolve(expr, param, vars, file, s);
  });
  return args;
}

function resolve(expr: string, param: WorkerParam, vars: Record<string, TacValue>, file: string, s: Statement): TacValue {
  const name = expr.trim();
  if (/^[A-Za-z_]\w*$/.test(name) && !['None', 'True', 'False'].includes(name)) {
    const v = vars[name];
    if (v === undefined) throw refuse(file, s, `Worker's ${param} is ${name}, which is not assigned a literal before`);
    return v;
  }
  const value = parseLiteral(name);
  if (value === undefined) throw refuse(file, s, `Worker's ${param} is not a literal or a variable`);
  return { value, line: s.line };
}
