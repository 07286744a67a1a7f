// The machine fingerprint that goes with every result: CPU model and count, kernel, frequency governor, boost,
// SMT, memory and the agent's version. Its short id goes into the Perfherder suite's extraOptions, which are part
// of a Perfherder series' signature: a changed machine (a kernel update, boost switched on) starts a new series,
// a new baseline, instead of showing up as a regression. `perf compare` refuses to compare across fingerprints.

import { createHash } from 'node:crypto';
import type { QuietHostProbe } from '../../platforms/common/quiet-host.js';

export interface MachineFingerprint {
  cpuModel: string;
  logicalCpus: number;
  kernel: string;
  governor: string | null;
  boost: boolean | null;
  smt: boolean | null;
  /** Installed memory, rounded to GiB (the exact byte count moves a little between boots). */
  memoryGiB: number;
  agentVersion: string;
  /** The first 12 hex digits of the sha256 of the fields above, in this order. */
  id: string;
}

export function machineFingerprint(probe: QuietHostProbe, agentVersion: string): MachineFingerprint {
  const policy = probe.cpuPolicy();
  const facts = {
    cpuModel: probe.cpuModel(),
    logicalCpus: probe.logicalCpus(),
    kernel: probe.kernel(),
    governor: policy.governor ?? null,
    boost: policy.boost ?? null,
    smt: policy.smt ?? null,
    memoryGiB: Math.round(probe.memoryBytes() / 2 ** 30),
    agentVersion,
  };
  return { ...facts, id: fingerprintId(facts) };
}

export function fingerprintId(facts: Omit<MachineFingerprint, 'id'>): string {
  const canonical = JSON.stringify([
    facts.cpuModel,
    facts.logicalCpus,
    facts.kernel,
    facts.governor,
    facts.boost,
    facts.smt,
    facts.memoryGiB,
    facts.agentVersion,
  ]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 12);
}

/** The fields two fingerprints differ in ('kernel: Linux 6.1 -> Linux 6.6'), empty when they are the same machine. */
export function fingerprintChanges(a: MachineFingerprint, b: MachineFingerprint): string[] {
  const keys = ['cpuModel', 'logicalCpus', 'kernel', 'governor', 'boost', 'smt', 'memoryGiB', 'agentVersion'] as const;
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k}: ${String(a[k])} -> ${String(b[k])}`);
}
