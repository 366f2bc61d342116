// A local process's CPU time and memory, read from /proc (Linux): what the local function server
// holds each function to, and what the benchmarks report.
import { readFile } from "node:fs/promises";

/** User + system CPU time of a process, from /proc/<pid>/stat (clock ticks of 10 ms). */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resident set size now (VmRSS) and at its peak (VmHWM), in MB, from /proc/<pid>/status. */
export async function rssMb(pid: number): Promise<{ now: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
  return { now: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

/** Peak resident set size of a process, in MB. */
export async function peakRssMb(pid: number): Promise<number> {
  return (await rssMb(pid)).peak;
}
