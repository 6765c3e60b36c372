// bench:failover — injected transcoder faults on a live 640x360 two-rendition stream with 1 s segments.
// Kinds: SIGKILL of the active worker (a replacement worker is started after each, so a standby is
// always there), SIGSTOP of the active ffmpeg (its worker revokes it and becomes a standby again), and a
// planned drain: SIGTERM of the active worker after its replacement is up (a rolling update's step).
// Per fault: detection and switch (from the failover event) and the output gap: completion of the first
// segment of the new epoch minus completion of the last segment before the fault, minus one segment.
// Per drain: the largest interval between two successive segments as the packager lists them (the old
// epoch's until the new epoch's first, then the new epoch's), around the move.
// Targets (issue 4): output gap p95 <= 2.0 s (moonshot 1.2 s); drain: max interval <= 1.5 x 1 s.
//   npm run bench:failover -- [--faults 20] [--json out.json]
import { parseArgs } from 'node:util';
import { decode } from '@live/bus';
import {
  assignmentRecord,
  buckets,
  type SegmentEvent,
  segmentEvent,
  subjects,
  transcoderHeartbeat,
} from '@live/contracts';
import { type Child, pidsByCommandLine, startPublisher, waitFor } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import { startPlatform } from '../tests/e2e/platform.js';
import { percentile, printTable, writeJson } from './lib.js';

const { values } = parseArgs({
  options: { faults: { type: 'string', default: '20' }, json: { type: 'string' } },
});
const faults = Number(values.faults);
const platform = await startPlatform({ workers: 2, env: { LOG_LEVEL: 'info' } });
const segments: SegmentEvent[] = [];
platform.nc.subscribe(subjects.mediaSegment('fo'), {
  callback: (_e, m) => {
    const d = decode(segmentEvent, m.data);
    if (d.ok && d.value.kind === 'media' && d.value.rendition.name === '360p') segments.push(d.value);
  },
});
const freeSlots = new Map<string, { free: number; at: number }>();
platform.nc.subscribe(subjects.allTranscoderHealth, {
  callback: (_e, m) => {
    const d = decode(transcoderHeartbeat, m.data);
    if (d.ok) freeSlots.set(d.value.workerId, { free: d.value.free, at: Date.now() });
  },
});
const standbyReady = (active: string) =>
  [...freeSlots.entries()].some(([id, w]) => id !== active && w.free > 0 && Date.now() - w.at < 1000);
const kv = await new Kvm(platform.nc).open(buckets.assignments);
const current = async () => {
  const entry = await kv.get('fo');
  const d = entry ? decode(assignmentRecord, entry.value) : null;
  if (!d?.ok) throw new Error('no assignment');
  return d.value;
};
const ffmpegOf = (epoch: number): number | undefined =>
  pidsByCommandLine((cmd) => cmd.startsWith('ffmpeg') && cmd.includes(`/fo-${epoch}/`))[0];

type Kind = 'sigkill-worker' | 'sigstop-ffmpeg';
const KINDS = ['sigkill-worker', 'sigstop-ffmpeg', 'sigterm-drain'] as const;
const results: Record<Kind, { detection: number[]; switch: number[]; gap: number[] }> = {
  'sigkill-worker': { detection: [], switch: [], gap: [] },
  'sigstop-ffmpeg': { detection: [], switch: [], gap: [] },
};
const drains = { maxIntervalMs: [] as number[], handoverMs: [] as number[], gapless: 0 };

/** Largest interval between successive listed segments: old epoch until the new one's first, then new. */
function maxListedInterval(oldEpoch: number, newEpoch: number, from: number): number {
  const firstNew = segments.find((s) => s.epoch === newEpoch);
  if (!firstNew) return Number.NaN;
  const listed = [
    ...segments.filter((s) => s.epoch === oldEpoch && s.completedAt < firstNew.completedAt),
    ...segments.filter((s) => s.epoch === newEpoch).slice(0, 3),
  ]
    .map((s) => s.completedAt)
    .filter((t) => t >= from - 1500)
    .sort((a, b) => a - b);
  let max = 0;
  for (let i = 1; i < listed.length; i++)
    max = Math.max(max, (listed[i] as number) - (listed[i - 1] as number));
  return max;
}
let publisher: Child | undefined;
try {
  publisher = startPublisher({
    url: platform.publishUrl(await platform.createKey('fo')),
    width: 640,
    height: 360,
    gopSeconds: 1,
  });
  for (let i = 0; i < faults * KINDS.length; i++) {
    const kind = KINDS[i % KINDS.length] as (typeof KINDS)[number];
    if (kind === 'sigterm-drain') platform.workers.push(await platform.startWorker());
    const before = await waitFor(
      async () => {
        const a = await current();
        // Steady: the current epoch has produced 3 segments, and a standby with a free slot exists.
        return segments.filter((s) => s.epoch === a.epoch).length >= 3 &&
          ffmpegOf(a.epoch) &&
          standbyReady(a.workerId)
          ? a
          : null;
      },
      { timeoutMs: 30_000, what: 'a steady stream before the next fault' },
    );
    const eventsBefore = platform.events.length;
    if (kind === 'sigterm-drain') {
      const victim = platform.workers[Number(before.workerId.slice(1)) - 1];
      if (!victim) throw new Error(`no process for ${before.workerId}`);
      const from = Date.now();
      const exit = await victim.stop('SIGTERM', 30_000);
      const moved = await waitFor(() => platform.events.slice(eventsBefore).find((e) => e.type === 'moved'), {
        timeoutMs: 15_000,
        what: 'the moved event of the drain',
      });
      if (moved.type !== 'moved') continue;
      await waitFor(() => segments.filter((s) => s.epoch === moved.epoch).length >= 3, {
        timeoutMs: 15_000,
        what: 'three segments of the new epoch',
      });
      drains.maxIntervalMs.push(maxListedInterval(before.epoch, moved.epoch, from));
      drains.handoverMs.push(moved.handoverMs);
      if (moved.gapless) drains.gapless++;
      console.log(
        `sigterm-drain #${drains.handoverMs.length}: exit ${exit.code}, handover ${moved.handoverMs} ms, max interval ${drains.maxIntervalMs.at(-1)} ms`,
      );
      continue;
    }
    const lastOld = () => segments.filter((s) => s.epoch === before.epoch).at(-1);
    if (kind === 'sigkill-worker') {
      // Workers are named w1, w2, ... in the order the harness starts them.
      const victim = platform.workers[Number(before.workerId.slice(1)) - 1];
      if (!victim) throw new Error(`no process for ${before.workerId}`);
      await victim.stop('SIGKILL');
    } else {
      const pid = ffmpegOf(before.epoch);
      if (pid) process.kill(pid, 'SIGSTOP');
    }
    const failover = await waitFor(
      () => platform.events.slice(eventsBefore).find((e) => e.type === 'failover'),
      {
        timeoutMs: 15_000,
        what: `failover after ${kind}`,
      },
    );
    if (failover.type !== 'failover') continue;
    const lastBefore = lastOld();
    const firstNew = await waitFor(() => segments.find((s) => s.epoch === failover.epoch), {
      timeoutMs: 15_000,
      what: 'first new segment',
    });
    const r = results[kind];
    r.detection.push(failover.detectionMs);
    r.switch.push(failover.switchMs);
    r.gap.push(firstNew.completedAt - (lastBefore?.completedAt ?? firstNew.completedAt) - 1000);
    console.log(
      `${kind} #${r.gap.length}: detection ${failover.detectionMs} ms, switch ${failover.switchMs} ms, gap ${r.gap.at(-1)} ms`,
    );
    if (kind === 'sigkill-worker') {
      // Keep a standby: a replacement worker joins (a new pod, in production).
      platform.workers.push(await platform.startWorker());
    }
  }
  const stats = (v: number[]) => ({ p50: percentile(v, 50), p95: percentile(v, 95), max: Math.max(...v) });
  const result = Object.fromEntries(
    Object.entries(results).map(([k, r]) => [
      k,
      {
        faults: r.gap.length,
        detectionMs: stats(r.detection),
        switchMs: stats(r.switch),
        outputGapMs: stats(r.gap),
      },
    ]),
  );
  for (const [kind, r] of Object.entries(result)) {
    printTable(`bench:failover — ${kind} (${r.faults} faults, 640x360 2 renditions, 1 s segments)`, [
      [
        'detection p50 / p95 / max (ms)',
        `${r.detectionMs.p50} / ${r.detectionMs.p95} / ${r.detectionMs.max}`,
        '<= 600',
      ],
      ['switch p50 / p95 / max (ms)', `${r.switchMs.p50} / ${r.switchMs.p95} / ${r.switchMs.max}`, '<= 100'],
      [
        'output gap p50 / p95 / max (ms)',
        `${r.outputGapMs.p50} / ${r.outputGapMs.p95} / ${r.outputGapMs.max}`,
        'p95 <= 2000 (moonshot 1200)',
      ],
    ]);
  }
  const drain = {
    drains: drains.handoverMs.length,
    gapless: drains.gapless,
    handoverMs: stats(drains.handoverMs),
    maxIntervalMs: stats(drains.maxIntervalMs),
  };
  printTable(`bench:failover — sigterm-drain (${drain.drains} drains, make-before-break)`, [
    ['gapless moves', `${drain.gapless} / ${drain.drains}`],
    [
      'handover p50 / p95 / max (ms)',
      `${drain.handoverMs.p50} / ${drain.handoverMs.p95} / ${drain.handoverMs.max}`,
    ],
    [
      'max inter-segment interval p50 / p95 / max (ms)',
      `${drain.maxIntervalMs.p50} / ${drain.maxIntervalMs.p95} / ${drain.maxIntervalMs.max}`,
      'max <= 1500 (1.5 x segment)',
    ],
  ]);
  writeJson(values.json, { ...result, 'sigterm-drain': drain });
} finally {
  await publisher?.stop('SIGKILL');
  await platform.stop();
}
