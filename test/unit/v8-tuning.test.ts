import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { heapGrowthFlag, memoryReducerFlags, turbofanDelayFlag } from '../../agent/v8-tuning.js';

describe('v8 tuning', () => {
  it('names the flag of each known V8 and none for an unknown one', () => {
    expect(turbofanDelayFlag('11.3.244.8-node.33')).toBe('--interrupt-budget=270336');
    expect(turbofanDelayFlag('12.4.254.21-node.33')).toBe('--invocation-count-for-turbofan=12000');
    expect(turbofanDelayFlag('13.0.1')).toBeUndefined();
  });

  it("this Node's V8 knows the flag chosen for it (no 'unrecognized flag' on stderr)", () => {
    const flag = turbofanDelayFlag(process.versions.v8);
    if (flag === undefined) return;
    const out = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    expect(out).toContain(`--${flag.slice(2).split('=')[0]} `);
  });

  it('leaves small heaps to IdleCompactor on V8 11 and 12 with flags this Node knows', () => {
    expect(memoryReducerFlags('11.3.244.8-node.33')).toEqual(['--memory-reducer-single-gc', '--no-memory-reducer-for-small-heaps']);
    expect(memoryReducerFlags('12.4.254.21-node.33')).toEqual(['--memory-reducer-gc-count=0', '--no-memory-reducer-for-small-heaps']);
    expect(memoryReducerFlags('13.0.1')).toEqual([]);
    const out = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    for (const flag of memoryReducerFlags(process.versions.v8)) expect(out).toContain(`--${flag.slice(2).replace(/^no-/, '').split('=')[0]} `);
  });

  it('fixes the heap growing factor on V8 11 and 12 with a flag this Node knows', () => {
    expect(heapGrowthFlag('11.3.244.8-node.33')).toBe('--heap-growing-percent=30');
    expect(heapGrowthFlag('12.4.254.21-node.33')).toBe('--heap-growing-percent=30');
    expect(heapGrowthFlag('13.0.1')).toBeUndefined();
    const flag = heapGrowthFlag(process.versions.v8);
    if (flag === undefined) return;
    const out = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    expect(out).toContain(`--${flag.slice(2).split('=')[0]} `);
  });
});
