/**
 * The machine a benchmark's figures were measured on, printed and stored with them (bench/README.md
 * asks for the CPU model, vCPUs, kernel, Node and the load with every figure).
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';

export interface MachineInfo { cpu: string; nproc: number; kernel: string; node: string; date: string; loadavg: number[] }

/** Now: lscpu's model name (os.cpus()'s without lscpu), the CPUs this process may use, the load average. */
export function machineInfo(): MachineInfo {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /Model name:\s*(.*)/.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1]?.trim() ?? cpu;
  } catch { /* lscpu missing: keep os.cpus() */ }
  return { cpu, nproc: os.availableParallelism(), kernel: os.release(), node: process.version, date: new Date().toISOString(), loadavg: os.loadavg().map((x) => Number(x.toFixed(2))) };
}
