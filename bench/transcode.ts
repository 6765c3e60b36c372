// bench:transcode — CPU seconds of the whole pipeline for a live ladder, against bare ffmpeg running the
// same ladder (same arguments, from the same file, at native speed) in the same run, as a ratio.
// Pipeline = nats-server + ingest + supervisor + packager + transcoder worker (and its ffmpeg child, whose
// CPU reaches the worker's cutime/cstime when it exits). The publisher (-c copy) is the streamer's side
// and not counted.
// Side by side: each round's bare ffmpeg runs at the same time as the pipeline's stream (both read the clip
// at native speed, ~0.5 core each on 2 cores), so both see the same host. Run one after the other, two
// ffmpeg runs of the same clip differed by up to 25 % on this shared machine, more than the services cost.
// Warm: services run for days, so the rounds measure a platform past its start: one platform, started
// once, first carries a warm-up stream (`--warm-up`, 120 s, not counted), then one stream per round. V8
// optimizes a function only after it has run some thousands of times (its interrupt budget), and much of
// the media path's code runs per frame, per part or per heartbeat, a few to tens of times a second: the
// services' cost falls for minutes. Measured per 10 s window beside one stream (2026-12-03, no bare ffmpeg):
// ~120 ms/s in the first 10 s of a fresh platform's first stream, 66-75 ms/s at 20-60 s, 53-63 ms/s in its
// second and third minutes; in this bench, the services' share of ffmpeg's CPU fell round after round from
// a cold start (0.167, 0.145, 0.134) and after a 60 s warm-up (0.143, 0.130, 0.127).
// `--warm-up 0` measures a cold platform (its first round is its first stream).
// Rounds: 3 by default, successive streams on the same platform; the ratio of medians is reported, and each
// round's own ratio beside it.
// Also printed: the services' CPU over the pipeline's own ffmpeg per round, and the host's CPU cost of one
// wake-up of an idle Node.js process per round (what that share scales with).
// Target (issue 3): ratio <= 1.10.
//   npm run bench:transcode -- [--seconds 60] [--rounds 3] [--warm-up 120] [--json out.json]
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { DEFAULT_LADDER, selectLadder } from '@live/contracts';
import { startPublisher, waitFor } from '@live/testing';
import { ladderCommand, toArgv } from '../services/transcoder/src/ffmpeg/ladder-args.js';
import { startPlatform } from '../tests/e2e/platform.js';
import { cachedClip, percentile, printTable, writeJson } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    rounds: { type: 'string', default: '3' },
    preset: { type: 'string', default: 'veryfast' },
    json: { type: 'string' },
    'warm-up': { type: 'string', default: '120' },
  },
});
const warmUpSeconds = Number(values['warm-up']);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const clip = await cachedClip(`clip-720p-${seconds}s.flv`, seconds, 3000, '1280x720');
const ladder = selectLadder({ width: 1280, height: 720, fps: 30 }, DEFAULT_LADDER);

/** user+system CPU seconds of a process itself and of its waited-for children (the worker's ffmpeg). */
function cpuOf(pid: number): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { own: (Number(f[11]) + Number(f[12])) / 100, children: (Number(f[13]) + Number(f[14])) / 100 };
}

/**
 * CPU (µs) an idle Node.js process spends per timer wake-up on this host, now. The services' cost is mostly
 * wake-ups (docs/architecture.md, "Overhead is wake-ups"), and this moves with the host's load (0.1-0.25 ms
 * seen on this VM), so it is printed beside each round to read the share against.
 */
async function wakeUpMicros(): Promise<number> {
  const intervalMs = 10;
  const child = spawn(process.execPath, ['-e', `setInterval(() => {}, ${intervalMs})`], { stdio: 'ignore' });
  const cpuNs = () => Number(readFileSync(`/proc/${child.pid}/schedstat`, 'utf8').split(' ')[0]);
  try {
    await sleep(1000); // past start-up
    const before = cpuNs();
    const startedAt = performance.now();
    await sleep(3000);
    const wakeUps = (performance.now() - startedAt) / intervalMs;
    return (cpuNs() - before) / 1000 / wakeUps;
  } finally {
    child.kill();
  }
}

/** Bare ffmpeg running the pipeline's ladder on the clip: its CPU seconds (user + system). */
async function baseline(): Promise<number> {
  const workDir = mkdtempSync(join(tmpdir(), 'baseline-'));
  const command = ladderCommand({
    input: clip,
    ladder,
    workDir,
    segmentSeconds: 1,
    partMs: 200,
    preset: values.preset,
    hasAudio: true,
  });
  // Same encoding and muxing; bare ffmpeg writes each rendition's fMP4 to a file instead of the worker's socket.
  const argv = toArgv(command).map((a) => (a.startsWith('unix:') ? `${a.slice('unix:'.length)}.mp4` : a));
  // Same arguments, reading the file at native speed like the pipeline's publisher does.
  const index = argv.indexOf('-i');
  argv.splice(index, 0, '-re');
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // bash's `times` prints the CPU time of its finished children: user and system.
  const { stdout: out } = await promisify(execFile)('bash', [
    '-c',
    `ffmpeg -y ${quoted} >/dev/null 2>&1; times`,
  ]);
  rmSync(workDir, { recursive: true, force: true });
  const children = out.trim().split('\n')[1] ?? '';
  const [user, sys] = children.split(/\s+/).map((t) => {
    const m = /(\d+)m([\d.]+)s/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  });
  return (user ?? 0) + (sys ?? 0);
}

type Platform = Awaited<ReturnType<typeof startPlatform>>;

/** CPU seconds so far of every pipeline process; the transcoder split into its Node.js and its ffmpeg. */
function sampler(platform: Platform): () => Record<string, number> {
  const processes: Record<string, number> = {
    'nats-server': platform.nats.child.pid as number,
    ingest: platform.ingest.pid as number,
    supervisor: platform.supervisor.pid as number,
    packager: platform.packager.pid as number,
  };
  const transcoder = (platform.workers[0] as { pid: number }).pid;
  return () => {
    const t = cpuOf(transcoder);
    const byProcess: Record<string, number> = {};
    for (const [name, pid] of Object.entries(processes)) {
      const c = cpuOf(pid);
      byProcess[name] = c.own + c.children;
    }
    byProcess['transcoder (Node.js)'] = t.own;
    byProcess['transcoder ffmpeg'] = t.children;
    return byProcess;
  };
}

/** One round on the running platform: one stream's CPU, and bare ffmpeg's beside it (started at once). */
async function round(
  platform: Platform,
  n: number,
): Promise<{ cpu: number; bare: number; byProcess: Record<string, number> }> {
  const sample = sampler(platform);
  const before = sample();
  const bare = baseline();
  await stream(platform, `round${n}`);
  const after = sample();
  const byProcess = Object.fromEntries(
    Object.entries(after).map(([k, v]) => [k, +(v - (before[k] ?? 0)).toFixed(2)]),
  );
  return { cpu: Object.values(byProcess).reduce((a, b) => a + b, 0), bare: await bare, byProcess };
}

/** One stream of the clip (or its first `seconds`) through the platform, until the worker's ffmpeg exited. */
async function stream(platform: Platform, streamId: string, seconds?: number): Promise<void> {
  const workerPid = (platform.workers[0] as { pid: number }).pid;
  const key = await platform.createKey(streamId);
  const publisher = startPublisher({
    url: platform.publishUrl(key),
    inputFile: clip,
    // A warm-up may be longer than the clip: it loops then.
    ...(seconds ? { durationSec: seconds } : { loop: false }),
  });
  await publisher.exited;
  await waitFor(() => platform.events.find((e) => e.streamId === streamId && e.type === 'ended'), {
    timeoutMs: 30_000,
    what: 'ended',
  });
  // The worker's ffmpeg finishes the last segments and exits; its CPU then shows in the worker's cutime.
  // Without it the round would miss that CPU, so not seeing it exit fails the bench.
  await waitFor(() => !hasFfmpegChild(workerPid), { timeoutMs: 30_000, what: 'the worker ffmpeg to exit' });
}

/**
 * Whether `pid` has an ffmpeg child not yet reaped, read from /proc (`ps --ppid` exits 1 when there is no child,
 * which waitFor took for "not yet": every round used to wait out its 30 s timeout and count 30 s of an idle
 * platform). Not @live/testing's pidsByCommandLine: an exited but unreaped ffmpeg has an empty command line,
 * and its CPU reaches the worker's cutime only once the worker has reaped it.
 */
function hasFfmpegChild(pid: number): boolean {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(' ')
    .filter(Boolean);
  return children.some((child) => {
    try {
      return readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'ffmpeg';
    } catch {
      return false; // exited between the two reads
    }
  });
}

const baselines: number[] = [];
const pipelines: number[] = [];
/**
 * Per round: the services' CPU (everything but ffmpeg) over the pipeline's own ffmpeg. Unlike the ratio, it
 * does not move with the difference between two ffmpeg runs (±1-3 CPU-s here), so it shows the services'
 * cost round after round; the ratio is about 1 + this + (pipeline ffmpeg - bare ffmpeg) / bare ffmpeg.
 */
const serviceShares: number[] = [];
const wakeUps: number[] = [];
let lastBreakdown: Record<string, number> = {};
// Production log level: the test harness's default (debug) costs CPU a real deployment does not spend.
const platform = await startPlatform({
  workers: 1,
  ladder: DEFAULT_LADDER,
  preset: values.preset,
  env: { LOG_LEVEL: 'info' },
});
try {
  if (warmUpSeconds > 0) {
    console.log(`warm-up: one ${warmUpSeconds} s stream, not counted...`);
    await stream(platform, 'warm', warmUpSeconds);
  }
  for (let n = 1; n <= rounds; n++) {
    wakeUps.push(await wakeUpMicros());
    console.log(`round ${n}/${rounds}: the pipeline and bare ffmpeg side by side...`);
    const p = await round(platform, n);
    baselines.push(p.bare);
    pipelines.push(p.cpu);
    const ffmpeg = p.byProcess['transcoder ffmpeg'] ?? 0;
    serviceShares.push((p.cpu - ffmpeg) / ffmpeg);
    lastBreakdown = p.byProcess;
  }
} finally {
  await platform.stop();
}
const result = {
  clip: `${seconds} s 1280x720@30 H.264 + AAC, read at native speed`,
  ladder: ladder.map((r) => `${r.name} ${r.width}x${r.height}@${r.fps} ${r.videoKbps}k`),
  preset: values.preset,
  rounds,
  warmUpSeconds,
  bareFfmpegCpuSeconds: baselines.map((v) => +v.toFixed(2)),
  pipelineCpuSeconds: pipelines.map((v) => +v.toFixed(2)),
  roundRatios: pipelines.map((v, i) => +(v / (baselines[i] as number)).toFixed(3)),
  servicesOverPipelineFfmpeg: serviceShares.map((v) => +v.toFixed(3)),
  hostWakeUpMicros: wakeUps.map((v) => Math.round(v)),
  pipelineBreakdownLastRound: lastBreakdown,
  ratio: +(percentile(pipelines, 50) / percentile(baselines, 50)).toFixed(3),
};
printTable('bench:transcode — pipeline CPU vs bare ffmpeg, same ladder, same file', [
  ['bare ffmpeg CPU s (median)', +percentile(baselines, 50).toFixed(2)],
  ['pipeline CPU s (median)', +percentile(pipelines, 50).toFixed(2)],
  ...Object.entries(lastBreakdown).map(([k, v]) => [`  ${k}`, v] as [string, number]),
  ['ratio per round', result.roundRatios.join(' ')],
  ['services / pipeline ffmpeg per round', result.servicesOverPipelineFfmpeg.join(' ')],
  ['host: µs per Node.js wake-up per round', result.hostWakeUpMicros.join(' ')],
  ['ratio (of medians)', result.ratio, '<= 1.10'],
]);
writeJson(values.json, result);
