// Units: what a chunk list names (the runner's test files, manifests, mozlog test paths), as opposed to the ids of
// the tests a report lists. A chunked run splits units, runs its own through the `{tests}` placeholder, and maps
// each reported test back to its unit so that the unit's time (the sum of its tests') balances the next split.
import path from 'node:path';
import { AgentError } from '../errors.js';
import { TimeSlicer } from '../fs/time-slice.js';
import { pyGlob } from '../py/glob.js';
import { compareIds } from './chunk.js';
import type { SuiteTest } from './run-types.js';

/** The word of a suite command replaced by the chunk's units, one argv element each. */
export const TESTS_PLACEHOLDER = '{tests}';

/** A unit as compared: '/' separators, no leading './', no doubled or trailing '/'. */
export function normalizeUnit(unit: string): string {
  let u = unit.replace(/\\/g, '/').replace(/\/{2,}/g, '/');
  while (u.startsWith('./')) u = u.slice(2);
  return u.length > 1 && u.endsWith('/') ? u.slice(0, -1) : u;
}

/**
 * The units to split: the listed ones and the files the glob matches (Python's glob, `**` across directories,
 * relative to `workdir`, made relative to it again), normalized, duplicates dropped, sorted by code units: the
 * same list on every OS whatever order the file system lists a directory in. `confine` sees each match first.
 */
export async function listUnits(listed: readonly string[], glob: string | undefined, workdir: string, confine?: (p: string) => void): Promise<string[]> {
  const units = new Set<string>();
  for (const u of listed) if (u.trim() !== '') units.add(normalizeUnit(u));
  if (glob !== undefined) {
    const full = path.isAbsolute(glob) ? glob : path.join(workdir, glob);
    for (const match of await pyGlob(full, { recursive: true, slicer: new TimeSlicer() })) {
      confine?.(match);
      units.add(normalizeUnit(path.isAbsolute(glob) ? match : path.relative(workdir, match)));
    }
  }
  return [...units].sort(compareIds);
}

/** Checks a suite command against the units: `{tests}` is a whole word of an argv, present exactly when units are. */
export function checkTestsPlaceholder(command: string | readonly string[], hasUnits: boolean): void {
  if (typeof command === 'string') {
    if (command.includes(TESTS_PLACEHOLDER) || hasUnits) {
      throw new AgentError(
        'E_SUITE_TESTS_PLACEHOLDER',
        `a suite command that runs a chunk's ${TESTS_PLACEHOLDER} must be a list of words (an argv), never a shell string`,
      );
    }
    return;
  }
  const whole = command.filter((w) => w === TESTS_PLACEHOLDER).length;
  const inside = command.some((w) => w !== TESTS_PLACEHOLDER && w.includes(TESTS_PLACEHOLDER));
  if (inside)
    throw new AgentError('E_SUITE_TESTS_PLACEHOLDER', `${TESTS_PLACEHOLDER} must be a word of its own in the suite command (it becomes one argument per test)`);
  if (hasUnits && whole === 0) {
    throw new AgentError('E_SUITE_TESTS_PLACEHOLDER', `the suite command has no ${TESTS_PLACEHOLDER} word: it would run every test, not its chunk's`);
  }
  if (!hasUnits && whole > 0)
    throw new AgentError('E_SUITE_TESTS_PLACEHOLDER', `the suite command has ${TESTS_PLACEHOLDER} but no tests were listed (tests or a tests glob)`);
}

/** The command with each `{tests}` word replaced by the units, one argv element each (never through a shell). */
export function expandTests(command: readonly string[], units: readonly string[]): string[] {
  return command.flatMap((w) => (w === TESTS_PLACEHOLDER ? [...units] : [w]));
}

/**
 * Maps a reported test to the unit it belongs to. Tried in order, the first that names a unit wins:
 * 1. the report's own file for the test (JUnit `file`: pytest's xunit1, Node's newer JUnit reporter, others);
 * 2. its group (vitest's JUnit classname is the file), or the first of its TAP groups (a runner that wraps each
 *    file in a subtest named by the file, as node-tap does), or its id (mozlog: the test's path);
 * 3. a dotted group read as a module path (pytest's `tests.test_x` or `tests.test_x.TestK` is `tests/test_x.py`,
 *    Java's `com.x.FooTest` is `.../com/x/FooTest.java`): the longest prefix whose path, without extension, is a
 *    unit's (or the end of one, for Java's source roots). Ambiguous matches map to nothing.
 */
export class UnitMap {
  private readonly units = new Set<string>();
  /** A unit's path without its extension, and each of its '/'-suffixes, to the unit (null: ambiguous). */
  private readonly stems = new Map<string, string | null>();

  constructor(
    units: readonly string[],
    private readonly workdir: string,
  ) {
    for (const u of units) {
      const unit = normalizeUnit(u);
      this.units.add(unit);
      const stem = unit.replace(/\.[^./]*$/, '');
      const parts = stem.split('/');
      for (let i = 0; i < parts.length; i++) {
        const key = parts.slice(i).join('/');
        const seen = this.stems.get(key);
        this.stems.set(key, seen === undefined || seen === unit ? unit : null);
      }
    }
  }

  unitOf(test: Pick<SuiteTest, 'id' | 'group' | 'source'>): string | undefined {
    const direct = [this.sourceUnit(test.source), test.group, test.group.split(' > ')[0], test.id];
    for (const c of direct) {
      if (c === undefined || c === '') continue;
      const unit = this.exact(c);
      if (unit !== undefined) return unit;
    }
    return this.dotted(test.group);
  }

  private exact(candidate: string): string | undefined {
    const n = normalizeUnit(candidate);
    if (this.units.has(n)) return n;
    // mozlog web-platform-tests ids start with '/', a listed path does not
    const bare = n.replace(/^\/+/, '');
    return this.units.has(bare) ? bare : undefined;
  }

  private sourceUnit(source: string | undefined): string | undefined {
    if (source === undefined || source === '') return undefined;
    return path.isAbsolute(source) ? path.relative(this.workdir, source) : source;
  }

  private dotted(group: string): string | undefined {
    if (group === '' || /[/\\\s]/.test(group)) return undefined;
    const parts = group.split('.');
    for (let k = parts.length; k >= 1; k--) {
      const key = parts.slice(0, k).join('/');
      const unit = this.stems.get(key);
      // one segment names a unit only as its whole stem (classname "test" must not claim every test.js)
      if (unit !== undefined && unit !== null && (k > 1 || unit.replace(/\.[^./]*$/, '') === key)) return unit;
    }
    return undefined;
  }
}

export interface UnitTimes {
  /** Seconds per unit: the sum of its timed tests' durations (skipped and untimed tests left out). */
  durations: Map<string, number>;
  /** Timed tests that map to no unit of the list. */
  unmapped: number;
}

/** This run's time of each unit, from its tests' reported durations. */
export function unitTimes(tests: readonly SuiteTest[], map: UnitMap): UnitTimes {
  const durations = new Map<string, number>();
  let unmapped = 0;
  for (const t of tests) {
    if (t.status === 'skip' || !Number.isFinite(t.duration_s) || t.duration_s < 0) continue;
    const unit = map.unitOf(t);
    if (unit === undefined) unmapped++;
    else durations.set(unit, (durations.get(unit) ?? 0) + t.duration_s);
  }
  return { durations, unmapped };
}
