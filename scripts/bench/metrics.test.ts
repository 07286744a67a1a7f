// Parsers of the benchmark (scripts/bench/run): /proc/<pid>/stat, VmHWM of /proc/<pid>/status and `ss -tinp` output, on text
// captured from this machine's kernel and iproute2 6.1; and the benchmark's output generator, which awk,
// python and the verifier must agree on.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { awkLines, benchBuilds, expectedSha, FULL_SIZES, LINE_BYTES, LogLines, payloadDeflateRatio, pythonTrickle, STDOUT_LINE_LENGTHS } from './builds.js';
import { median, parseCpuTotals, parseProcStat, parseSsTin, parseVmHWM } from './metrics.js';

describe('parseProcStat', () => {
  it('reads utime, stime and the children fields', () => {
    const line =
      '10870 (cat) R 10865 10865 8896 0 -1 4194304 101 0 0 0 7 3 2 1 20 0 1 0 544889 3133440 390 18446744073709551615 94282992615424 94282992635305 140733070365040 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n';
    expect(parseProcStat(line)).toEqual({ pid: 10870, comm: 'cat', state: 'R', ppid: 10865, utime: 7, stime: 3, cutime: 2, cstime: 1, starttime: 544889 });
  });

  it('takes the command name up to the last parenthesis, spaces and parentheses included', () => {
    const line =
      '42 (my (odd) name) S 1 42 42 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 3 0 99 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0';
    const st = parseProcStat(line);
    expect(st.comm).toBe('my (odd) name');
    expect(st.state).toBe('S');
    expect(st.utime + st.stime).toBe(1801);
  });

  it('parses this process', () => {
    const st = parseProcStat(readFileSync('/proc/self/stat', 'utf8'));
    expect(st.pid).toBeGreaterThan(0);
    expect(st.utime + st.stime).toBeGreaterThanOrEqual(0);
  });

  it('rejects text that is not a stat line', () => {
    expect(() => parseProcStat('garbage')).toThrow(/not a \/proc\/<pid>\/stat line/);
    expect(() => parseProcStat('1 (x) S 0')).toThrow(/field 14/);
  });
});

describe('parseVmHWM', () => {
  it('returns the peak RSS in bytes', () => {
    const status = 'Name:\tnode\nVmPeak:\t 1100000 kB\nVmSize:\t 1000000 kB\nVmHWM:\t   68812 kB\nVmRSS:\t   60000 kB\n';
    expect(parseVmHWM(status)).toBe(68812 * 1024);
  });

  it('fails on a status without VmHWM (kernel thread, zombie)', () => {
    expect(() => parseVmHWM('Name:\tkthreadd\nState:\tS (sleeping)\n')).toThrow(/no VmHWM/);
  });
});

// `ss -tinp` on iproute2 6.1: a loopback connection (both ends shown) and an unrelated one.
const SS_OUTPUT = `State Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
ESTAB 0      0          127.0.0.1:35113    127.0.0.1:41172 users:(("python3",pid=10920,fd=21))
\t bbr wscale:10,10 rto:204 rtt:0.056/0.087 ato:40 mss:47616 pmtu:65535 rcvmss:536 advmss:65483 cwnd:13 bytes_sent:100000 bytes_acked:100001 bytes_received:5 segs_out:4 segs_in:5 data_segs_out:3 data_segs_in:1 bbr:(bw:17314892576bps,mrtt:0.014,pacing_gain:2.88672,cwnd_gain:2.88672) send 88429714286bps lastsnd:308 lastrcv:308 lastack:308 pacing_rate 535120425240bps delivery_rate 2274197008bps delivered:4 reordering:4 rcv_space:65483 rcv_ssthresh:65483 minrtt:0.014 snd_wnd:93184
ESTAB 0      0          192.0.2.2:56684 203.0.113.80:80    users:(("http",pid=10912,fd=3))
\t bbr wscale:10,10 rto:204 rtt:0.111/0.028 ato:40 mss:1348 cwnd:16 bytes_sent:1920 bytes_acked:1921 bytes_received:486113 segs_out:42 segs_in:40
ESTAB 0      0          127.0.0.1:41172    127.0.0.1:35113 users:(("node",pid=10931,fd=20))
\t bbr wscale:10,10 rto:204 rtt:0.016/0.009 ato:40 mss:32768 cwnd:11 bytes_sent:5 bytes_acked:6 bytes_received:100000 segs_out:5 segs_in:5
ESTAB 0      0      [::ffff:127.0.0.1]:8010 [::ffff:127.0.0.1]:50000
\t cubic wscale:7,7 rto:204 rtt:0.03/0.015 mss:65483 cwnd:10 bytes_acked:1 segs_out:1 segs_in:2
LISTEN 0      50            0.0.0.0:9989       0.0.0.0:*     users:(("python3",pid=10920,fd=9))
\t cubic rto:1000 mss:536 cwnd:10
`;

describe('parseSsTin', () => {
  const sockets = parseSsTin(SS_OUTPUT);

  it('finds every socket and skips the header', () => {
    expect(sockets.map((s) => `${s.state} ${s.local.port}->${s.peer.port}`)).toEqual([
      'ESTAB 35113->41172',
      'ESTAB 56684->80',
      'ESTAB 41172->35113',
      'ESTAB 8010->50000',
      'LISTEN 9989->0',
    ]);
  });

  it('reads the byte counters of the tcp_info line', () => {
    const master = sockets[0]!;
    expect(master.local).toEqual({ address: '127.0.0.1', port: 35113 });
    expect(master.bytesSent).toBe(100000);
    expect(master.bytesAcked).toBe(100001);
    expect(master.bytesReceived).toBe(5);
    expect(sockets[2]!.bytesReceived).toBe(100000);
  });

  it('reads the owning pids and IPv6 addresses; a missing counter stays undefined', () => {
    expect(sockets[0]!.pids).toEqual([10920]);
    expect(sockets[2]!.pids).toEqual([10931]);
    const v6 = sockets[3]!;
    expect(v6.local).toEqual({ address: '::ffff:127.0.0.1', port: 8010 });
    expect(v6.pids).toEqual([]);
    expect(v6.bytesReceived).toBeUndefined();
    expect(v6.bytesAcked).toBe(1);
  });

  it('accepts the Netid column of `ss -ain` style output', () => {
    const [s] = parseSsTin('tcp ESTAB 0 0 127.0.0.1:1 127.0.0.1:2\n\t bytes_acked:7 bytes_received:9\n');
    expect(s).toMatchObject({ state: 'ESTAB', local: { port: 1 }, peer: { port: 2 }, bytesAcked: 7, bytesReceived: 9 });
  });

  it('returns nothing for an empty listing', () => {
    expect(parseSsTin('State Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n')).toEqual([]);
  });
});

describe('parseCpuTotals', () => {
  it('sums the busy fields of the aggregate cpu line', () => {
    const text = 'cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 12345\n';
    expect(parseCpuTotals(text)).toEqual({ busy: 161, total: 1181 });
  });

  it('parses this machine', () => {
    const t = parseCpuTotals(readFileSync('/proc/stat', 'utf8'));
    expect(t.total).toBeGreaterThan(t.busy);
  });
});

describe('median', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow();
  });
});

describe('generated build output', () => {
  const COUNT = 3000;
  const expected = (): string => {
    const gen = new LogLines();
    let out = '';
    for (let i = 0; i < COUNT; i++) out += gen.next();
    return out;
  };

  it('has fixed-length, distinct lines', () => {
    const lines = expected().split('\n').slice(0, -1);
    expect(lines.every((l) => l.length + 1 === LINE_BYTES)).toBe(true);
    expect(new Set(lines).size).toBe(COUNT);
    expect(lines[0]).toMatch(/^line 00000000 \S/);
    expect(createHash('sha256').update(expected()).digest('hex')).toBe(expectedSha(COUNT));
  });

  it('is what awk prints', () => {
    expect(execFileSync('awk', [awkLines(COUNT)], { encoding: 'utf8' })).toBe(expected());
  });

  it.each(STDOUT_LINE_LENGTHS.filter((n) => n !== LINE_BYTES))('is what awk prints with %i-byte lines', (lineBytes) => {
    const gen = new LogLines(lineBytes);
    let want = '';
    for (let i = 0; i < COUNT; i++) want += gen.next();
    expect(
      want
        .split('\n')
        .slice(0, -1)
        .every((l) => l.length + 1 === lineBytes),
    ).toBe(true);
    expect(execFileSync('awk', [awkLines(COUNT, lineBytes)], { encoding: 'utf8' })).toBe(want);
    expect(createHash('sha256').update(want).digest('hex')).toBe(expectedSha(COUNT, lineBytes));
    expect(expectedSha(COUNT, lineBytes)).not.toBe(expectedSha(COUNT));
  });

  it('runs the 50 MiB stdout build at every line length, each an exact 50 MiB', () => {
    const stdout = benchBuilds(FULL_SIZES).filter((b) => b.family === 'stdout');
    expect(stdout.map((b) => b.name)).toEqual(['stdout-50MiB', 'stdout-50MiB-80B', 'stdout-50MiB-40B']);
    expect(stdout.every((b) => b.payloadBytes === FULL_SIZES.stdoutBytes)).toBe(true);
  });

  it('is what the python trickle prints', () => {
    expect(execFileSync('/usr/bin/python3', ['-c', pythonTrickle(COUNT, COUNT)], { encoding: 'utf8' })).toBe(expected());
  });

  it('compresses like a build log, not like a repeated line', () => {
    const ratio = payloadDeflateRatio(2 * 1024 * 1024);
    expect(ratio).toBeGreaterThan(0.1);
    expect(ratio).toBeLessThan(0.3);
  });
});
