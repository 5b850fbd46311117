/**
 * Peak resident memory of another process, from Linux /proc: VmHWM is the high-water mark of
 * RSS, and writing 5 to clear_refs resets it, so each benchmark phase gets its own peak.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const KIB = 1024;

function statusField(pid: number, field: string): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * KIB : undefined;
  } catch {
    return undefined;
  }
}

/** Resets the peak so the next reading covers only what follows. False where unsupported. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS in bytes since start or the last reset; undefined off Linux. */
export function peakRss(pid: number): number | undefined {
  return statusField(pid, 'VmHWM');
}

export function currentRss(pid: number): number | undefined {
  return statusField(pid, 'VmRSS');
}
