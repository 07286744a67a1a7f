// The Windows service's stop program, from the generated WinSW configuration to the words bbagent parses: the
// configuration is read back as XML, the stop command line is joined as WinSW 1.17 joins it (its <stopargument>
// elements, each quoted when it holds a space and is not quoted already, then a space and the service's
// <arguments>), split as Windows splits a command line (CommandLineToArgvW), and handed to `bbagent stop`'s own
// parsing: the BASEDIR and the drain options come out whole, for paths with spaces, a trailing backslash or an
// ampersand, and for an npm install (node.exe running bbagent.cjs). WinSW itself never ran here.

import { describe, expect, it } from 'vitest';
import { parseDrainTimeout, parseStopLine, splitAppended } from '../../agent/cli/stop.js';
import { basedirOfServiceArgs } from '../../agent/cli/stop-drain.js';
import type { ServiceSpec } from '../../platforms/index.js';
import { renderWinswXml, stopArguments } from '../../platforms/win32/winsw-config.js';
import { child, parseXml, python } from './service-helpers.js';

/** Splits a command line as CommandLineToArgvW does (backslashes count only before a quote; "" inside quotes is a quote). */
export function splitWindowsCommandLine(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    let arg = '';
    let quoted = false;
    while (i < line.length && (quoted || (line[i] !== ' ' && line[i] !== '\t'))) {
      let slashes = 0;
      while (line[i] === '\\') {
        slashes++;
        i++;
      }
      if (line[i] === '"') {
        arg += '\\'.repeat(Math.floor(slashes / 2));
        if (slashes % 2 === 1) arg += '"';
        else if (quoted && line[i + 1] === '"') {
          arg += '"';
          i++;
        } else quoted = !quoted;
        i++;
      } else if (slashes > 0) arg += '\\'.repeat(slashes);
      else arg += line[i++];
    }
    args.push(arg);
  }
  return args;
}

/** The stop program's command line as WinSW 1.17 builds it from the configuration (ServiceDescriptor.AppendTags, WrapperService.StopIt). */
function winswStopCommandLine(xmlText: string): { program: string; line: string } {
  const doc = parseXml(xmlText);
  let stop = '';
  for (const a of doc.children.filter((c) => c.tag === 'stopargument')) {
    const token = a.text.startsWith('"') && a.text.endsWith('"') ? a.text : a.text.includes(' ') ? `"${a.text}"` : a.text;
    stop += ` ${token}`;
  }
  return { program: child(doc, 'stopexecutable').text, line: `${stop} ${child(doc, 'arguments').text}` };
}

const spec = (basedir: string, command: string[]): ServiceSpec => ({ name: 'w1', description: 'd', basedir, command, user: '.\\bbagent', stopTimeoutS: 600 });

describe('the Windows command line splitter used here', () => {
  it('follows CommandLineToArgvW', () => {
    expect(splitWindowsCommandLine(' a  "b c" d\\e "f\\\\" "g\\"h" ""')).toEqual(['a', 'b c', 'd\\e', 'f\\', 'g"h', '']);
  });
});

describe.skipIf(!python)("the WinSW stop program's command line", () => {
  const cases: [string, string, string[]][] = [
    ['a path with spaces', 'C:\\build workers\\w 1', ['C:\\Program Files\\bbagent\\bbagent.exe']],
    ['a trailing backslash', 'C:\\build workers\\w 1\\', ['C:\\Program Files\\bbagent\\bbagent.exe']],
    ['an ampersand (XML-escaped)', 'C:\\R&D\\w1', ['C:\\bbagent\\bbagent.exe']],
    [
      'an npm install (node.exe + bbagent.cjs)',
      'C:\\w 1',
      ['C:\\Program Files\\nodejs\\node.exe', 'C:\\Users\\ci admin\\npm\\node_modules\\bbagent\\build\\bbagent.cjs'],
    ],
  ];
  for (const [what, basedir, self] of cases) {
    it(`${what}: bbagent parses the BASEDIR and the drain options out of what WinSW runs`, () => {
      const xmlText = renderWinswXml(spec(basedir, [...self, 'start', '--nodaemon', basedir]));
      expect(xmlText).not.toMatch(/&(?!amp;|lt;|gt;|quot;)/);
      const { program, line } = winswStopCommandLine(xmlText);
      expect(program).toBe(self[0]);
      const argv = splitWindowsCommandLine(line);
      // the script (npm), then the subcommand: the rest is stop's
      expect(argv.slice(0, self.length)).toEqual([...self.slice(1), 'stop']);
      const parsed = parseStopLine(argv.slice(self.length));
      expect(parsed).toEqual({
        help: false,
        quiet: false,
        drain: { timeoutS: 600, service: true },
        basedir,
        appended: [...self.slice(1), 'start', '--nodaemon', basedir],
      });
      // the appended words name the same BASEDIR
      expect(basedirOfServiceArgs(parsed.appended!)).toBe(basedir);
    });
  }

  it('the stop arguments end with --, carry the stop timeout, and need a start command', () => {
    const s = spec('C:\\w1', ['C:\\b\\bbagent.exe', 'start', '--nodaemon', 'C:\\w1']);
    expect(stopArguments(s)).toEqual(['stop', '--drain', '--service', '--timeout', '600', 'C:\\w1', '--']);
    expect(() => stopArguments({ ...s, command: ['C:\\b\\bbagent.exe', 'run'] })).toThrow(/must run bbagent start/);
  });
});

describe('the stop command line', () => {
  it('drain options need --drain, words after -- need --service; a service stop without BASEDIR takes the appended one', () => {
    expect(() => parseStopLine(['--timeout', '5', 'D'])).toThrow(/--timeout goes with --drain/);
    expect(() => parseStopLine(['--service', 'D'])).toThrow(/--service goes with --drain/);
    expect(() => parseStopLine(['--drain', 'D', '--', 'start', 'D'])).toThrow(/only with --service/);
    expect(() => parseStopLine(['--drain', 'D', 'E'])).toThrow(/unexpected argument 'E'/);
    expect(parseStopLine(['--drain', '--service', '--', 'start', '--nodaemon', 'C:\\w 1']).basedir).toBe('C:\\w 1');
    expect(parseStopLine(['-q'])).toEqual({ help: false, quiet: true, drain: undefined, basedir: '.', appended: undefined });
  });

  it('are split off; the BASEDIR is the last word after start', () => {
    expect(splitAppended(['--drain', 'D'])).toEqual({ own: ['--drain', 'D'], appended: undefined });
    expect(splitAppended(['--drain', '--', 'start', '--nodaemon', 'D', '--'])).toEqual({ own: ['--drain'], appended: ['start', '--nodaemon', 'D', '--'] });
    expect(basedirOfServiceArgs(['start', '--nodaemon', 'C:\\w 1'])).toBe('C:\\w 1');
    expect(basedirOfServiceArgs(['x.cjs', 'start', 'D'])).toBe('D');
    expect(basedirOfServiceArgs(['start', '--nodaemon'])).toBeUndefined();
    expect(basedirOfServiceArgs(['start'])).toBeUndefined();
    expect(basedirOfServiceArgs([])).toBeUndefined();
  });

  it('--timeout takes whole seconds from 1 to a day', () => {
    expect(parseDrainTimeout(undefined)).toBe(1800);
    expect(parseDrainTimeout('90')).toBe(90);
    for (const bad of ['0', '-5', '1.5', '90s', '86401', '']) expect(() => parseDrainTimeout(bad)).toThrow(/--timeout must be whole seconds/);
  });
});
