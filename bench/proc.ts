/** The CPU of a local process, from /proc, for the fleet benchmark's source backends. */
import { readFileSync } from 'node:fs';

/** A process's CPU so far. */
export interface ProcReading {
  /** utime + stime, in clock ticks (`getconf CLK_TCK`). */
  readonly ticks: number;
  /** Time on a CPU in nanoseconds (schedstat); null where the kernel does not keep it. */
  readonly ns: number | null;
}

/** A process's CPU so far, or undefined when the process is gone. */
export function readProc(pid: number): ProcReading | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    let ns: number | null = null;
    try {
      ns = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      ns = null;
    }
    return { ticks, ns };
  } catch {
    return undefined;
  }
}
