// What the benchmark measures about a process and a TCP connection, read from the kernel: CPU time from
// /proc/<pid>/stat, peak RSS from /proc/<pid>/status, per-socket byte counters from `ss -tinp`. The
// parsers are pure (unit-tested on captured text); the readers around them do the I/O.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';

export interface ProcStat {
  pid: number;
  /** The command name between the parentheses (may itself contain spaces and parentheses). */
  comm: string;
  state: string;
  ppid: number;
  /** Clock ticks this process spent in user mode (field 14). */
  utime: number;
  /** Clock ticks this process spent in kernel mode (field 15). */
  stime: number;
  /** Ticks of waited-for children (fields 16, 17); not part of the process's own CPU. */
  cutime: number;
  cstime: number;
  /** Start time in ticks after boot (field 22). */
  starttime: number;
}

/**
 * Parses the one line of /proc/<pid>/stat (proc(5)). `comm` is everything between the first '(' and the
 * LAST ')', because a process may name itself "a) b"; the fields after it are space separated.
 */
export function parseProcStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${JSON.stringify(text.slice(0, 80))}`);
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state), so field n is rest[n - 3]
  const field = (n: number): number => {
    const raw = rest[n - 3];
    const value = Number(raw);
    if (raw === undefined || !Number.isInteger(value)) throw new Error(`/proc/${pid}/stat: field ${n} is ${JSON.stringify(raw)}, not an integer`);
    return value;
  };
  if (!Number.isInteger(pid)) throw new Error(`/proc/<pid>/stat: bad pid ${JSON.stringify(text.slice(0, open))}`);
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: rest[0] ?? '?',
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
    starttime: field(22),
  };
}

export interface CpuTotals {
  /** Ticks all CPUs spent busy (user, nice, system, irq, softirq, steal). */
  busy: number;
  /** busy + idle + iowait. */
  total: number;
}

/**
 * The aggregate "cpu" line of /proc/stat (proc(5)): "cpu user nice system idle iowait irq softirq steal
 * guest guest_nice" in clock ticks, summed over all CPUs. guest time is already part of user time.
 */
export function parseCpuTotals(procStat: string): CpuTotals {
  const line = procStat.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) throw new Error('no aggregate "cpu" line in /proc/stat');
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** The peak resident set size ("VmHWM:  1234 kB") of /proc/<pid>/status, in bytes. */
export function parseVmHWM(statusText: string): number {
  const m = /^VmHWM:\s+(\d+)\s+kB\s*$/m.exec(statusText);
  if (!m?.[1]) throw new Error('no VmHWM line in /proc/<pid>/status (a kernel thread or a zombie has none)');
  return Number(m[1]) * 1024;
}

export interface SsEndpoint {
  address: string;
  port: number;
}

export interface SsSocket {
  state: string;
  local: SsEndpoint;
  peer: SsEndpoint;
  /** pids from `users:(("node",pid=1,fd=2),...)` (only with `ss -p`). */
  pids: number[];
  /** tcp_info counters (`ss -i`); undefined when the kernel did not report them. */
  bytesSent: number | undefined;
  bytesAcked: number | undefined;
  bytesReceived: number | undefined;
}

const SS_STATES = new Set(['ESTAB', 'SYN-SENT', 'SYN-RECV', 'FIN-WAIT-1', 'FIN-WAIT-2', 'TIME-WAIT', 'UNCONN', 'CLOSE-WAIT', 'LAST-ACK', 'LISTEN', 'CLOSING']);

function parseEndpoint(text: string): SsEndpoint {
  // 127.0.0.1:9989, [::1]:9989, [::ffff:127.0.0.1]:9989, *:9989, 127.0.0.1%lo:9989
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw new Error(`ss: endpoint without a port: ${JSON.stringify(text)}`);
  const portText = text.slice(colon + 1);
  const port = portText === '*' ? 0 : Number(portText);
  if (!Number.isInteger(port)) throw new Error(`ss: bad port in ${JSON.stringify(text)}`);
  let address = text.slice(0, colon);
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  return { address, port };
}

function counter(info: string, key: string): number | undefined {
  const m = new RegExp(`(?:^|\\s)${key}:(\\d+)(?=\\s|$)`).exec(info);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/**
 * Parses `ss -tin` / `ss -tinp` output (iproute2): one line per socket (State Recv-Q Send-Q Local Peer
 * [Process], optionally after a Netid column), followed by indented lines of tcp_info ("bytes_acked:N
 * bytes_received:N ..."). The header line, if present, is skipped.
 */
export function parseSsTin(output: string): SsSocket[] {
  const sockets: SsSocket[] = [];
  let info: string[] = [];
  let current: Omit<SsSocket, 'bytesSent' | 'bytesAcked' | 'bytesReceived'> | undefined;
  const flush = (): void => {
    if (current) {
      const text = info.join(' ');
      sockets.push({
        ...current,
        bytesSent: counter(text, 'bytes_sent'),
        bytesAcked: counter(text, 'bytes_acked'),
        bytesReceived: counter(text, 'bytes_received'),
      });
    }
    current = undefined;
    info = [];
  };
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    if (/^\s/.test(line)) {
      if (current) info.push(line.trim());
      continue;
    }
    flush();
    let tokens = line.trim().split(/\s+/);
    if (tokens[0] === 'tcp' || tokens[0] === 'udp' || tokens[0] === 'Netid') tokens = tokens.slice(1);
    const state = tokens[0] ?? '';
    if (!SS_STATES.has(state)) continue; // the header, or something this parser does not know
    const local = tokens[3];
    const peer = tokens[4];
    if (local === undefined || peer === undefined) throw new Error(`ss: short socket line: ${JSON.stringify(line)}`);
    const processText = tokens.slice(5).join(' ');
    const pids = [...processText.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
    current = { state, local: parseEndpoint(local), peer: parseEndpoint(peer), pids };
  }
  flush();
  return sockets;
}

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

// ---------------------------------------------------------------------------------------------------------
// Readers

let clkTck: number | undefined;

/** Clock ticks per second of the utime/stime fields (`getconf CLK_TCK`, 100 on Linux). */
export function clockTicksPerSecond(): number {
  if (clkTck === undefined) {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (!Number.isInteger(value) || value <= 0) throw new Error(`getconf CLK_TCK printed ${value}`);
    clkTck = value;
  }
  return clkTck;
}

export function readProcStat(pid: number): ProcStat {
  return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** CPU seconds (utime + stime) of the process itself, not of its children. */
export function ownCpuSeconds(pid: number): number {
  const st = readProcStat(pid);
  return (st.utime + st.stime) / clockTicksPerSecond();
}

/** CPU ticks of the reaped children of a process (cutime + cstime): build steps, for a worker. */
export function childrenCpuTicks(pid: number): number {
  const st = readProcStat(pid);
  return st.cutime + st.cstime;
}

export function cpuTotals(): CpuTotals {
  return parseCpuTotals(readFileSync('/proc/stat', 'utf8'));
}

/** Ticks of the main thread alone (/proc/<pid>/task/<pid>/stat): for twistd, the reactor thread. */
export function mainThreadCpuTicks(pid: number): number {
  const st = parseProcStat(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8'));
  return st.utime + st.stime;
}

/** Own CPU ticks, for idle detection (cheaper to compare than seconds). */
export function ownCpuTicks(pid: number): number {
  const st = readProcStat(pid);
  return st.utime + st.stime;
}

export function peakRssBytes(pid: number): number {
  return parseVmHWM(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** The executable of a process (readlink /proc/<pid>/exe). */
export function executableOf(pid: number): string {
  return readlinkSync(`/proc/${pid}/exe`);
}

/** Direct children of a process, from /proc/<pid>/task/<tid>/children of every thread. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(path.join(`/proc/${pid}/task`, tid, 'children'), 'utf8').trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

/** Fails unless `pid` runs an executable whose name matches `exe` and has no child processes. */
export function assertSingleProcess(pid: number, exe: RegExp, what: string): string {
  const file = executableOf(pid);
  if (!exe.test(path.basename(file))) throw new Error(`${what}: pid ${pid} runs ${file}, expected ${exe} (the CPU counters would be the wrong process's)`);
  const children = childPids(pid);
  if (children.length > 0) throw new Error(`${what}: pid ${pid} (${file}) has child processes ${children.join(', ')} whose CPU would not be counted`);
  return file;
}

export function ssSockets(): SsSocket[] {
  return parseSsTin(execFileSync('ss', ['-tinp'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }));
}

export interface WireCounters {
  /** Master-side socket: bytes the master received from the worker. */
  received: number;
  /** Master-side socket: bytes the master sent that the worker acknowledged. */
  acked: number;
  /** The worker's local port, to check that the connection did not change between two samples. */
  workerPort: number;
}

/**
 * The byte counters of the master-side socket of the connection between `workerPid` and `masterPort`:
 * the worker-side socket is found by its owner, the master side by the port pair.
 */
export function wireCounters(masterPort: number, workerPid: number): WireCounters {
  const sockets = ssSockets().filter((s) => s.state === 'ESTAB');
  const workerSide = sockets.filter((s) => s.peer.port === masterPort && s.pids.includes(workerPid));
  if (workerSide.length !== 1) {
    throw new Error(`expected one connection from worker pid ${workerPid} to port ${masterPort}, found ${workerSide.length}`);
  }
  const workerPort = workerSide[0]!.local.port;
  const masterSide = sockets.find((s) => s.local.port === masterPort && s.peer.port === workerPort);
  if (!masterSide) throw new Error(`no master-side socket for ${masterPort} <- ${workerPort}`);
  if (masterSide.bytesReceived === undefined || masterSide.bytesAcked === undefined) {
    throw new Error(`ss reported no bytes_received/bytes_acked for ${masterPort} <- ${workerPort} (kernel too old?)`);
  }
  return { received: masterSide.bytesReceived, acked: masterSide.bytesAcked, workerPort };
}
