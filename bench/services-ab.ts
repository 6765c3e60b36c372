// bench:services-ab — is a change to the services cheaper? Two platforms run at the same time, each with one
// looped 720p ladder; platform B's services get other Node.js flags (--b-node-args, added after
// SERVICE_NODE_FLAGS: `--no-single-threaded-gc` undoes one) and/or other environment (--b-env KEY=VALUE,...,
// for its services and its nats-server).
// Both are measured over the same windows, so the host's swings (this shared VM's services cost 58-100 ms/s
// from one run to the next) hit both alike: read the pairs, not the absolute figures. Identical platforms
// differed by 0.5-3 ms/s per 45 s window (2026-12-03). A code change is compared by making it switchable
// through the environment for the experiment.
// Prints, per window, each platform's services' CPU (ms per second of wall time, per process) and its ffmpeg's,
// then the median of B minus A.
//   npm run bench:services-ab -- [--b-node-args "--single-threaded"] [--b-env K=V,K2=V2] [--warm-up 60]
//     [--window 45] [--windows 4] [--json out.json]

import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { DEFAULT_LADDER } from '@live/contracts';
import { type Child, startPublisher, waitFor } from '@live/testing';
import { type Platform, startPlatform } from '../tests/e2e/platform.js';
import { cachedClip, percentile, printTable, writeJson } from './lib.js';

const { values } = parseArgs({
  options: {
    'b-node-args': { type: 'string', default: '' },
    'b-env': { type: 'string', default: '' },
    'warm-up': { type: 'string', default: '60' },
    window: { type: 'string', default: '45' },
    windows: { type: 'string', default: '4' },
    json: { type: 'string' },
  },
});
const bEnv = Object.fromEntries(
  values['b-env']
    .split(',')
    .filter(Boolean)
    .map((pair) => {
      const at = pair.indexOf('=');
      if (at < 1) throw new Error(`--b-env: "${pair}" is not KEY=VALUE`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
);
const windowSeconds = Number(values.window);

// The clip bench:transcode streams by default.
const clip = await cachedClip('clip-720p-60s.flv', 60, 3000, '1280x720');

/** The sum of `read` over every thread of a process (its /proc task folder); 0 once it is gone. */
function sumOverThreads(pid: number, read: (taskDir: string) => number): number {
  let total = 0;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) total += read(`/proc/${pid}/task/${task}`);
  } catch {
    // exited between the listing and the read
  }
  return total;
}

/** CPU time (ns) of every thread of a process. */
const cpuNs = (pid: number) =>
  sumOverThreads(pid, (dir) => Number(readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]));

/** Voluntary context switches of every thread of a process (each one a sleep and a wake-up). */
const wakeUps = (pid: number) =>
  sumOverThreads(pid, (dir) =>
    Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`${dir}/status`, 'utf8'))?.[1] ?? 0),
  );

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** The services' CPU in a window's row: every process but the worker's ffmpeg. */
const servicesOf = (row: Record<string, number>) =>
  Object.entries(row)
    .filter(([name]) => name !== 'ffmpeg')
    .reduce((sum, [, value]) => sum + value, 0);

interface Side {
  label: 'A' | 'B';
  platform: Platform;
  publisher: Child;
  processes: Record<string, number>;
  /** The worker's ffmpeg: its children, and any child of those. */
  ffmpegPids(): number[];
}

async function start(label: 'A' | 'B', env: Record<string, string>): Promise<Side> {
  const platform = await startPlatform({
    workers: 1,
    ladder: DEFAULT_LADDER,
    preset: 'veryfast',
    env: { LOG_LEVEL: 'info', ...env },
  });
  const streamId = `ab${label.toLowerCase()}`;
  const publisher = startPublisher({
    url: platform.publishUrl(await platform.createKey(streamId)),
    inputFile: clip,
    loop: true,
  });
  await waitFor(async () => ((await platform.media(streamId, '360p'))?.segments.length ?? 0) >= 3, {
    timeoutMs: 40_000,
    what: `platform ${label}: segments`,
  });
  const worker = (platform.workers[0] as Child).pid;
  return {
    label,
    platform,
    publisher,
    processes: {
      'nats-server': platform.nats.child.pid as number,
      ingest: platform.ingest.pid,
      supervisor: platform.supervisor.pid,
      packager: platform.packager.pid,
      'transcoder (Node.js)': worker,
    },
    ffmpegPids: () => childPids(worker).flatMap((pid) => [pid, ...childPids(pid)]),
  };
}

const sides: Side[] = [];
try {
  sides.push(await start('A', {}));
  // B's services are started with the extra flags (serviceCommand reads this when each one starts).
  process.env.LIVE_SERVICES_NODE_ARGS = [
    process.env.LIVE_SERVICES_NODE_ARGS ?? '',
    values['b-node-args'],
  ].join(' ');
  // B's nats-server too (its environment is this process's, GOMAXPROCS aside: natsServerEnv), e.g. GODEBUG.
  Object.assign(process.env, bEnv);
  sides.push(await start('B', bEnv));
  console.log(`both platforms streaming; warming up ${values['warm-up']} s...`);
  await sleep(Number(values['warm-up']) * 1000);
  /** `read` of each process of a side, the worker's ffmpeg summed as one. */
  const snapshot = (side: Side, read: (pid: number) => number): Record<string, number> => ({
    ...Object.fromEntries(Object.entries(side.processes).map(([name, pid]) => [name, read(pid)])),
    ffmpeg: side.ffmpegPids().reduce((sum, pid) => sum + read(pid), 0),
  });
  /** Per second of the window, per process, in `unit`s, to `decimals`. */
  const perSecond = (
    start: Record<string, number>,
    end: Record<string, number>,
    unit: number,
    decimals: number,
  ) =>
    Object.fromEntries(
      Object.keys(end).map((name) => [
        name,
        +(((end[name] ?? 0) - (start[name] ?? 0)) / unit / windowSeconds).toFixed(decimals),
      ]),
    );
  const windows: { A: Record<string, number>; B: Record<string, number> }[] = [];
  for (let w = 0; w < Number(values.windows); w++) {
    // Wake-ups (voluntary context switches, all threads) explain most of the services' cost on this VM.
    const cpuBefore = sides.map((side) => snapshot(side, cpuNs));
    const wakeUpsBefore = sides.map((side) => snapshot(side, wakeUps));
    await sleep(windowSeconds * 1000);
    const row: Record<string, Record<string, number>> = {};
    sides.forEach((side, i) => {
      // ms of CPU per second, one decimal; wake-ups per second, whole.
      const cpu = perSecond(cpuBefore[i] ?? {}, snapshot(side, cpuNs), 1e6, 1);
      const woken = perSecond(wakeUpsBefore[i] ?? {}, snapshot(side, wakeUps), 1, 0);
      row[side.label] = cpu;
      const list = (r: Record<string, number>) =>
        Object.entries(r)
          .map(([n, v]) => `${n} ${v}`)
          .join(', ');
      console.log(
        `window ${w + 1} ${side.label}: services ${servicesOf(cpu).toFixed(1)} ms/s (${list(cpu)})`,
      );
      console.log(`         wake-ups/s (${list(woken)})`);
    });
    windows.push({ A: row.A ?? {}, B: row.B ?? {} });
  }
  const names = [...Object.keys(sides[0]?.processes ?? {}), 'ffmpeg'];
  const medianDelta = (of: (r: Record<string, number>) => number) =>
    Math.round(
      percentile(
        windows.map((w) => of(w.B) - of(w.A)),
        50,
      ) * 10,
    ) / 10;
  const deltas: Record<string, number> = {
    services: medianDelta(servicesOf),
    ...Object.fromEntries(names.map((n) => [n, medianDelta((r) => r[n] ?? 0)])),
  };
  printTable(
    `B - A, median over ${windows.length} windows of ${windowSeconds} s (ms of CPU per second)`,
    Object.entries(deltas),
  );
  writeJson(values.json, {
    bNodeArgs: values['b-node-args'],
    bEnv,
    warmUpSeconds: Number(values['warm-up']),
    windowSeconds,
    windows,
    medianDeltaMsPerSecond: deltas,
  });
} finally {
  for (const side of sides) {
    await side.publisher.stop();
    await side.platform.stop();
  }
}
process.exit(0);
