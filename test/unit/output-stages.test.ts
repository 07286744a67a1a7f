import { describe, expect, it } from 'vitest';
import { ProgressCollapser } from '../../agent/output/collapse.js';
import { Redactor } from '../../agent/output/redact.js';
import { TokenBucket } from '../../agent/output/budget.js';

describe('Redactor', () => {
  it('replaces values, also split across chunks', () => {
    const r = new Redactor(['s3cret', 'tok']);
    let out = r.push('a s3c');
    out += r.push('ret b to');
    out += r.push('k c s3');
    out += r.flush();
    expect(out).toBe('a <redacted> b <redacted> c s3');
  });
  it('holds back only what could start a secret', () => {
    const r = new Redactor(['abc']);
    expect(r.push('xyz')).toBe('xyz');
    expect(r.push('xa')).toBe('x');
    expect(r.push('bc!')).toBe('<redacted>!');
  });
  it('does nothing without values', () => {
    const r = new Redactor(['']);
    expect(r.active).toBe(false);
    expect(r.push('abc')).toBe('abc');
  });
});

describe('ProgressCollapser', () => {
  it('keeps only the last state within one flush', () => {
    const c = new ProgressCollapser();
    expect(c.push('10%\r20%\r30%')).toBe('10%\n');
    expect(c.push('\r40%')).toBe('');
    expect(c.takeProgress()).toBe('40%\n');
    expect(c.push('\r100%\ndone\n')).toBe('100%\ndone\n');
  });
  it('\\r\\n is a line end, also split across chunks', () => {
    const c = new ProgressCollapser();
    expect(c.push('a\r')).toBe('a');
    expect(c.push('\nb\r\n')).toBe('\r\nb\r\n'); // the line splitter folds \r\n
    expect(c.takeProgress()).toBe('');
  });
  it('a rewrite at a chunk start after a partial line', () => {
    const c = new ProgressCollapser();
    expect(c.push('downloading 10%')).toBe('downloading 10%');
    expect(c.push('\rdownloading 50%')).toBe('\n');
    expect(c.push('\rdownloading 90%')).toBe('');
    expect(c.flush()).toBe('downloading 90%');
  });
});

describe('TokenBucket', () => {
  it('grants the burst, then the rate', () => {
    let now = 0;
    const b = new TokenBucket(1000, 500, () => now);
    expect(b.tryTake(500)).toBe(true);
    expect(b.tryTake(1)).toBe(false);
    now = 100;
    expect(b.tryTake(100)).toBe(true);
    expect(b.tryTake(1)).toBe(false);
    b.takeDebt(200);
    expect(b.waitMs()).toBe(200);
    now = 400;
    expect(b.waitMs()).toBe(0);
  });
});
