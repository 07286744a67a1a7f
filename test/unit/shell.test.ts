// The shell command with real child processes, through the command host and a recording channel.
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { alive } from '../helpers/procs.js';
import { CommandHost } from '../../agent/worker/command-host.js';
import { shellCommand } from '../../agent/commands/shell.js';
import { rmdirCommand } from '../../agent/commands/rmdir.js';
import { cpdirCommand } from '../../agent/commands/cpdir.js';
import { silentLogger } from '../../agent/log.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import { currentPlatform } from '../../platforms/index.js';
import { RecordingChannel } from '../helpers/recording-channel.js';

const platform = currentPlatform();
const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-shell-'));
const environ = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: basedir, LANG: 'C.UTF-8' };

/** A SIGKILLed process takes a moment to die (longer on a loaded machine): true once it is gone. */
async function deadWithin(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

function host() {
  return new CommandHost([shellCommand, rmdirCommand, cpdirCommand], { basedir, platform, logger: silentLogger, environ, now: () => Date.now() / 1000 });
}

async function run(args: Record<string, unknown>, name = 'shell', during?: (h: CommandHost, ch: RecordingChannel) => void) {
  const h = host();
  const ch = new RecordingChannel();
  const done = h.start({ name, id: '1', args: { workdir: path.join(basedir, 'build'), ...args }, channel: ch, settings: defaultOutputSettings() });
  during?.(h, ch);
  await done;
  return ch;
}

describe('shell', () => {
  it('runs a string through /bin/sh with the reference header', async () => {
    const ch = await run({ command: 'echo out1; echo err1 >&2; printf partial', timeout: 1200 });
    const header = ch.text('header');
    expect(header).toMatch(
      /^echo out1; echo err1 >&2; printf partial\n in dir .*\/build \(timeout 1200 secs\)\n watching logfiles \{\}\n argv: b'echo out1; echo err1 >&2; printf partial'\n environment:\n  BUILDBOT_TRACKING_ID=bbagent-\d+-[0-9a-f]{16}\n  HOME=.*\n  LANG=C.UTF-8\n  PATH=.*\n  PWD=.*\/build\n using PTY: False\nelapsedTime=\d+\.\d{6}\n$/,
    );
    expect(ch.text('stdout')).toBe('out1\npartial\n');
    expect(ch.text('stderr')).toBe('err1\n');
    expect(ch.status('rc')).toEqual([0]);
    // as buildbot-worker: the unterminated last line leaves the line buffer only at completion, after elapsed
    expect(ch.keys.slice(-2)).toEqual(['elapsed', 'stdout']);
    expect(ch.failure).toBeNull();
  });

  it('reports the exit code and runs an argv without the shell', async () => {
    const ch = await run({ command: ['sh', '-c', 'exit 3'], logEnviron: false });
    expect(ch.status('rc')).toEqual([3]);
    expect(ch.text('header')).toContain(" argv: [b'sh', b'-c', b'exit 3']\n");
    expect(ch.text('header').split('\n')[0]).toBe("sh -c 'exit 3'");
  });

  it('a missing program: rc 1 and a traceback on stderr, as buildbot-worker', async () => {
    const ch = await run({ command: ['no-such-program-xyz'], logEnviron: false });
    expect(ch.status('rc')).toEqual([1]);
    expect(ch.text('stderr')).toMatch(/FileNotFoundError: \[Errno 2\] No such file or directory/);
    expect(ch.failure).toBeNull();
  });

  it('a workdir that cannot be created fails the command with no header', async () => {
    writeFileSync(path.join(basedir, 'afile'), 'x');
    const ch = await run({ command: 'true', workdir: path.join(basedir, 'afile', 'sub') });
    expect(ch.failure?.type).toBe('NotADirectoryError');
    expect(ch.text('header')).toBe('');
    expect(ch.keys).toEqual(['elapsed']);
  });

  it('env: None deletes, lists join, ${VAR} expands', async () => {
    const ch = await run({ command: 'echo "$A|$B|${HOME-unset}"', env: { A: ['x', 'y'], B: '${LANG}!', HOME: null }, logEnviron: false });
    expect(ch.text('stdout')).toBe('x:y|C.UTF-8!|unset\n');
  });

  it('initial_stdin is written and closed; without it stdin is closed', async () => {
    const ch = await run({ command: 'cat; echo done', initial_stdin: 'hello\n', usePTY: true, logEnviron: false });
    expect(ch.text('stdout')).toBe('hello\ndone\n');
    expect(ch.text('header')).toMatch(/^WARNING: disabling usePTY for this commandcat; echo done\n/);
    expect(ch.text('header')).toContain(' writing 6 bytes to stdin\n');
    const ch2 = await run({ command: 'cat; echo done', logEnviron: false });
    expect(ch2.text('stdout')).toBe('done\n');
  });

  it('usePTY where the platform has no PTY (Windows): dropped with the reference warning, as buildbot-worker', async () => {
    const noPty = { ...platform, supportsPty: false };
    const h = new CommandHost([shellCommand], { basedir, platform: noPty, logger: silentLogger, environ, now: () => Date.now() / 1000 });
    const ch = new RecordingChannel();
    await h.start({
      name: 'shell',
      id: '1',
      args: { workdir: path.join(basedir, 'build'), command: 'test -t 1 && echo tty || echo pipe', usePTY: true, logEnviron: false },
      channel: ch,
      settings: defaultOutputSettings(),
    });
    expect(ch.text('stdout')).toBe('pipe\n');
    expect(ch.text('header')).toMatch(/^WARNING: disabling usePTY for this commandtest -t 1/);
    expect(ch.text('header')).toContain(' using PTY: False\n');
    expect(ch.status('rc')).toEqual([0]);
  });

  it('usePTY: a tty, 0x0, no TERM added, \\r\\n folded', async () => {
    const ch = await run({ command: 'tty; stty size; echo "TERM=${TERM-unset}"', usePTY: true, logEnviron: false });
    const out = ch.text('stdout');
    expect(out).toMatch(/^\/dev\/pts\/\d+\n0 0\nTERM=unset\n$/);
    expect(ch.text('header')).toContain(' using PTY: True\n');
  });

  it('want_stdout false drops stdout only', async () => {
    const ch = await run({ command: 'echo a; echo b >&2', want_stdout: false, logEnviron: false });
    expect(ch.text('stdout')).toBe('');
    expect(ch.text('stderr')).toBe('b\n');
  });

  it('invalid UTF-8 becomes U+FFFD; unicode passes', async () => {
    const ch = await run({ command: "printf 'caf\\303\\251 \\377 ok\\n'", logEnviron: false });
    expect(ch.text('stdout')).toBe('café \ufffd ok\n');
  });

  it('timeout (no output) kills the whole tree', async () => {
    const pidfile = path.join(basedir, 'gc.pid');
    const ch = await run({ command: `echo start; (sleep 60 & echo $! > ${pidfile}; wait) ; sleep 60`, timeout: 1, logEnviron: false });
    expect(ch.text('header')).toContain("\ncommand timed out: 1 seconds without output running b'echo start;");
    expect(ch.text('header')).toContain('process killed by signal 9\n');
    expect(ch.status('rc')).toEqual([-1]);
    const gc = Number(readFileSync(pidfile, 'utf8'));
    expect(await deadWithin(gc, 2000)).toBe(true);
  });

  it('timeout counts from the last output: output every 0.4 s outlasts a 1 s timeout, the silence after it does not', async () => {
    const t0 = performance.now();
    const ch = await run({ command: 'for i in 1 2 3 4 5; do echo $i; sleep 0.4; done; sleep 60', timeout: 1, logEnviron: false });
    const elapsed = performance.now() - t0;
    expect(ch.text('stdout')).toBe('1\n2\n3\n4\n5\n');
    expect(ch.text('header')).toContain('\ncommand timed out: 1 seconds without output running');
    expect(ch.status('rc')).toEqual([-1]);
    // killed 1 s after the last output (at ~2 s), not 1 s after the start, nor much later
    expect(elapsed).toBeGreaterThan(2500);
    expect(elapsed).toBeLessThan(10_000);
  });

  it('maxTime kills; sigtermTime escalates to the whole tree, even a grandchild that left the group and ignores TERM', async () => {
    const pidfile = path.join(basedir, 'setsid.pid');
    const ch = await run({
      command: `setsid sh -c 'trap "" TERM; echo $$ > ${pidfile}; sleep 60' & sleep 0.3; echo go; sleep 60`,
      maxTime: 1,
      sigtermTime: 1,
      logEnviron: false,
    });
    expect(ch.text('header')).toContain('command timed out: 1 seconds elapsed running');
    expect(ch.status('rc')).toEqual([-1]);
    const gc = Number(readFileSync(pidfile, 'utf8'));
    expect(await deadWithin(gc, 2000)).toBe(true);
  });

  it('interrupt: header, signal, rc -1, no elapsed', async () => {
    const ch = await run({ command: 'echo started; sleep 60', logEnviron: false }, 'shell', (h, c) => {
      const iv = setInterval(() => {
        if (c.messages.length || h.runningCount) {
          clearInterval(iv);
          setTimeout(() => h.interrupt('1', 'test', true), 300);
        }
      }, 20);
    });
    expect(ch.text('header')).toContain('\ncommand interrupted, attempting to kill\nprocess killed by signal 9\n');
    expect(ch.status('rc')).toEqual([-1]);
    expect(ch.status('elapsed')).toEqual([]);
  });

  it('logfiles are tailed into log updates', async () => {
    const ch = await run({ command: 'echo line1 > my.log; sleep 0.1; echo line2 >> my.log', logfiles: { mylog: 'my.log' }, logEnviron: false });
    expect(ch.log('mylog')).toBe('line1\nline2\n');
    expect(ch.text('header')).toContain(" watching logfiles {'mylog': 'my.log'}\n");
  });

  it('a logfile written just before the end is read whole, and the rc comes after all of it', async () => {
    // 4 MiB the 2 s poll never saw: the final read goes in slices between turns of the event loop
    const ch = await run({ command: 'yes zzzzzzz | head -c 4194304 > big.log', logfiles: { big: 'big.log' }, logEnviron: false });
    const big = ch.log('big');
    expect(big.length).toBe(4 * 1024 * 1024);
    expect(big === 'zzzzzzz\n'.repeat(512 * 1024)).toBe(true);
    const keys = ch.keys;
    expect(keys.lastIndexOf('log')).toBeLessThan(keys.indexOf('rc'));
    expect(ch.status('rc')).toEqual([0]);
  });
});

describe('rmdir and cpdir', () => {
  it('cpdir copies verbosely and rmdir removes', async () => {
    const src = path.join(basedir, 'src');
    await run({ command: `mkdir -p ${src}/a && echo x > ${src}/a/f`, logEnviron: false });
    const cp = await run({ from_path: src, to_path: path.join(basedir, 'dst', 'copy'), logEnviron: false }, 'cpdir');
    expect(cp.status('rc')).toEqual([0]);
    expect(cp.text('stdout')).toContain(`'${src}/a/f' -> '${basedir}/dst/copy/a/f'`);
    const rm = await run({ paths: [path.join(basedir, 'dst')], logEnviron: false }, 'rmdir');
    expect(rm.status('rc')).toEqual([0]);
    expect(rm.text('header')).toContain(`rm -rf ${basedir}/dst\n`);
    expect(existsSync(path.join(basedir, 'dst'))).toBe(false);
  });
});
