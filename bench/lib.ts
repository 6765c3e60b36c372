// Small helpers shared by the benchmarks: process CPU/RSS from /proc, percentiles, table + JSON output.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeClip, repoRoot } from '@live/testing';

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function printTable(title: string, rows: [string, string | number, string?][]): void {
  console.log(`\n${title}`);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [key, value, target] of rows) {
    console.log(
      `  ${key.padEnd(width)}  ${String(value).padStart(12)}${target ? `   target ${target}` : ''}`,
    );
  }
}

export function writeJson(path: string | undefined, data: unknown): void {
  const json = JSON.stringify(data, null, 2);
  if (path) writeFileSync(path, json);
  console.log(`\nJSON:\n${json}`);
}

/**
 * A test clip in bench/results, encoded once (encodeClip's arguments) and reused by later runs: its path.
 */
export async function cachedClip(
  name: string,
  seconds: number,
  kbps: number,
  size?: string,
): Promise<string> {
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  if (!existsSync(path)) {
    console.log(`encoding the test clip ${name} once...`);
    await encodeClip(path, seconds, kbps, size);
  }
  return path;
}
