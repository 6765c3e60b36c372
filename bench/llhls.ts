// bench:llhls — glass-to-glass latency of LL-HLS against plain HLS, watched at the same time in two Chromium
// windows through the real watch page (/watch/<id>?ll=1 and ?ll=0), with a SIGKILL failover of the active
// transcoder worker in the middle of the run.
//   Glass to glass: the publisher burns the wall clock into each frame as it makes it (a barcode, see
//   clockBarcodeFilter 'wallclock'); each page reads the barcode of every frame it presents
//   (requestVideoFrameCallback + canvas) and subtracts it from the frame's display time. Same machine,
//   same clock: the figure includes encoding, RTMP, transcoding, parts/segments, HTTP, buffering, decoding.
//   Also: hls.js `latency` (its own estimate), stalls (hls.js BUFFER_STALLED_ERROR and <video> `waiting`
//   after the start), playlist requests per viewer per second, and the cadence of part events (jitter).
// Target (issue 8): LL-HLS p50 <= 1.5 s with zero stalls, a SIGKILL failover in the run included.
//   npm run bench:llhls -- [--seconds 60] [--warmup 8] [--preset veryfast] [--no-kill] [--json out.json]
/// <reference lib="dom" />
import { parseArgs } from 'node:util';
import { decode } from '@live/bus';
import { buckets, partEvent, subjects } from '@live/contracts';
import { type Child, startPublisher, waitFor } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import type { Page } from 'playwright-core';
import { openBrowser, type Person } from '../services/web/test/browser.js';
import { startPlatform } from '../tests/e2e/platform.js';
import { percentile, printTable, writeJson } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '8' },
    preset: { type: 'string', default: 'veryfast' },
    'no-kill': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const warmupSeconds = Number(values.warmup);
const STREAM = 'g2g';

// biome-ignore lint/suspicious/noExplicitAny: the page's own objects (hls.js, the player) are untyped here.
type PageWindow = any;

/** In the page: read the clock barcode of every presented frame; sample hls.js latency every second. */
async function instrument(page: Page): Promise<void> {
  // tsx (esbuild keepNames) wraps named functions in __name(); the page has no such helper.
  await page.evaluate('globalThis.__name = (f) => f');
  await page.evaluate(() => {
    const w = window as PageWindow;
    performance.setResourceTimingBufferSize(100_000);
    w.__g2g = [] as [number, number][];
    w.__hlsLatency = [] as [number, number][];
    w.__frozenMs = 0;
    const video = w.__live.video as HTMLVideoElement;
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true }) as CanvasRenderingContext2D;
    const BITS = 16;
    const WRAP = 2 ** BITS * 10;
    const read = (): number => {
      const width = video.videoWidth;
      const height = video.videoHeight;
      canvas.width = width;
      canvas.height = height;
      ctx.drawImage(video, 0, 0);
      const row = ctx.getImageData(0, Math.floor(height / 16), width, 1).data;
      const block = width / BITS;
      let value = 0;
      for (let i = 0; i < BITS; i++) {
        const x = Math.floor(i * block + block / 2);
        const luma =
          0.299 * (row[4 * x] ?? 0) + 0.587 * (row[4 * x + 1] ?? 0) + 0.114 * (row[4 * x + 2] ?? 0);
        if (luma > 128) value += 2 ** i;
      }
      return value * 10;
    };
    const onFrame = (_now: number, meta: VideoFrameCallbackMetadata) => {
      if (video.videoWidth > 0) {
        const shown = performance.timeOrigin + meta.expectedDisplayTime;
        let latency = (shown % WRAP) - read();
        if (latency < -10_000) latency += WRAP;
        w.__g2g.push([Date.now(), latency]);
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    let last = -1;
    setInterval(() => {
      const latency = w.__live.hls()?.latency;
      if (Number.isFinite(latency) && latency > 0) w.__hlsLatency.push([Date.now(), latency]);
    }, 1000);
    setInterval(() => {
      if (!video.paused && video.currentTime === last) w.__frozenMs += 100;
      last = video.currentTime;
    }, 100);
  });
}

interface Snapshot {
  stalls: number;
  waiting: number;
  frozenMs: number;
  errors: string[];
  fatal: string[];
  g2g: [number, number][];
  hlsLatency: [number, number][];
  playlistRequests: number[];
  targetLatency: number;
}

interface Result {
  frames: number;
  g2gP50: number;
  g2gP95: number;
  g2gMax: number;
  hlsLatencyP50: number;
  targetLatency: number;
  stalls: number;
  waiting: number;
  frozenMs: number;
  playlistRequestsPerSecond: number;
  errors: string[];
  fatal: string[];
}

const snapshot = (page: Page): Promise<Snapshot> =>
  page.evaluate(() => {
    const w = window as PageWindow;
    const stats = w.__live.stats;
    return {
      stalls: stats.stalls,
      waiting: stats.waiting,
      frozenMs: w.__frozenMs,
      errors: [...stats.errors],
      fatal: [...stats.fatal],
      g2g: w.__g2g,
      hlsLatency: w.__hlsLatency,
      playlistRequests: performance
        .getEntriesByType('resource')
        .filter((e) => /\.m3u8(\?|$)/.test(e.name))
        .map((e) => performance.timeOrigin + e.startTime),
      targetLatency: w.__live.hls()?.targetLatency ?? 0,
    };
  });

const platform = await startPlatform({
  workers: 2,
  web: true,
  preset: values.preset,
  env: { LOG_LEVEL: 'info' },
});
const viewers: Person[] = [];
let publisher: Child | undefined;
try {
  const partArrivals: { at: number; epoch: number }[] = [];
  platform.nc.subscribe(subjects.mediaPart(STREAM), {
    callback: (_e, m) => {
      const d = decode(partEvent, m.data);
      if (d.ok && d.value.rendition === '360p') partArrivals.push({ at: Date.now(), epoch: d.value.epoch });
    },
  });
  publisher = startPublisher({
    url: platform.publishUrl(await platform.createKey(STREAM)),
    width: 640,
    height: 360,
    fps: 30,
    gopSeconds: 1,
    clockBarcode: 'wallclock',
  });
  const pages: Record<'LL-HLS' | 'HLS', Page> = {} as never;
  for (const [mode, ll] of [
    ['LL-HLS', 1],
    ['HLS', 0],
  ] as const) {
    const viewer = await openBrowser();
    viewers.push(viewer);
    await viewer.page.goto(`${platform.webUrl}/watch/${STREAM}?ll=${ll}`);
    pages[mode] = viewer.page;
  }
  for (const page of Object.values(pages)) {
    await page.waitForFunction(() => (window as PageWindow).__live?.stats.playingSince !== null, null, {
      timeout: 60_000,
      polling: 200,
    });
    await instrument(page);
  }
  // Warm-up: hls.js settles at its target latency; the window starts after it.
  const warmEnd = Date.now() + warmupSeconds * 1000;
  await waitFor(() => Date.now() >= warmEnd, {
    timeoutMs: warmupSeconds * 1000 + 5000,
    intervalMs: 200,
    what: 'warm-up',
  });
  const start = Date.now();
  const before = { 'LL-HLS': await snapshot(pages['LL-HLS']), HLS: await snapshot(pages.HLS) };
  let killedAt: number | null = null;
  const end = start + seconds * 1000;
  if (!values['no-kill']) {
    // The failover: SIGKILL of the active worker half-way, in steady state; the standby takes the stream.
    await waitFor(() => Date.now() >= start + (seconds * 1000) / 2, {
      timeoutMs: seconds * 1000,
      intervalMs: 100,
      what: 'half-time',
    });
    const assignment = (await (await new Kvm(platform.nc).open(buckets.assignments)).get(STREAM))?.json<{
      workerId: string;
    }>();
    const victim = platform.workers[Number(assignment?.workerId.replace('w', '')) - 1];
    if (!victim) throw new Error(`no worker ${assignment?.workerId}`);
    killedAt = Date.now();
    await victim.stop('SIGKILL');
  }
  await waitFor(() => Date.now() >= end, {
    timeoutMs: seconds * 1000 + 5000,
    intervalMs: 200,
    what: 'the run',
  });
  const results = {} as Record<'LL-HLS' | 'HLS', Result>;
  for (const mode of ['LL-HLS', 'HLS'] as const) {
    const a = before[mode];
    const b = await snapshot(pages[mode]);
    const g2g = b.g2g.filter(([at]) => at >= start && at <= end).map(([, l]) => l);
    const hlsLatency = b.hlsLatency.filter(([at]) => at >= start && at <= end).map(([, l]) => l * 1000);
    const requests = b.playlistRequests.filter((at) => at >= start && at <= end).length;
    results[mode] = {
      frames: g2g.length,
      g2gP50: Math.round(percentile(g2g, 50)),
      g2gP95: Math.round(percentile(g2g, 95)),
      g2gMax: Math.round(Math.max(...g2g)),
      hlsLatencyP50: Math.round(percentile(hlsLatency, 50)),
      targetLatency: Math.round(b.targetLatency * 1000),
      stalls: b.stalls - a.stalls,
      waiting: b.waiting - a.waiting,
      frozenMs: b.frozenMs - a.frozenMs,
      playlistRequestsPerSecond: Math.round((requests / seconds) * 100) / 100,
      errors: b.errors.slice(a.errors.length),
      fatal: b.fatal.slice(a.fatal.length),
    };
  }
  // Part cadence: intervals between part events of the top rendition within one epoch (a failover's gap
  // is reported on its own).
  const inWindow = partArrivals.filter((p) => p.at >= start && p.at <= end);
  const intervals: number[] = [];
  let failoverGap: number | null = null;
  for (let i = 1; i < inWindow.length; i++) {
    const [previous, current] = [inWindow[i - 1], inWindow[i]] as [
      (typeof inWindow)[0],
      (typeof inWindow)[0],
    ];
    if (current.epoch === previous.epoch) intervals.push(current.at - previous.at);
    else failoverGap = current.at - previous.at;
  }
  // The failover's parts: when the supervisor reassigned the stream, and when the new epoch's first part came.
  const failovers = platform.events.filter((e) => e.streamId === STREAM && e.type === 'failover');
  const failover = killedAt ? failovers.find((e) => Date.parse(e.at) >= killedAt) : undefined;
  const detectionMs = killedAt && failover ? Date.parse(failover.at) - killedAt : null;
  const lastOld = killedAt ? partArrivals.filter((p) => p.at <= killedAt).at(-1) : undefined;
  const firstNew = lastOld ? partArrivals.find((p) => p.epoch > lastOld.epoch) : undefined;
  const firstNewPartMs = killedAt && firstNew ? firstNew.at - killedAt : null;
  const mean = intervals.reduce((s, x) => s + x, 0) / Math.max(1, intervals.length);
  const jitter = Math.sqrt(
    intervals.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, intervals.length),
  );
  const ll = results['LL-HLS'];
  const plain = results.HLS;
  const pass = ll.g2gP50 <= 1500 && ll.stalls === 0 && ll.waiting === 0;
  printTable(
    `bench:llhls — ${seconds} s, 640x360 30 fps source, ladder 360p+240p (${values.preset}), ${killedAt ? 'SIGKILL failover at half-time' : 'no failover'}`,
    [
      ['glass-to-glass p50 (ms)', `LL-HLS ${ll.g2gP50} | HLS ${plain.g2gP50}`, 'LL <= 1500'],
      [
        'glass-to-glass p95 / max (ms)',
        `LL-HLS ${ll.g2gP95} / ${ll.g2gMax} | HLS ${plain.g2gP95} / ${plain.g2gMax}`,
      ],
      ['hls.js latency p50 (ms)', `LL-HLS ${ll.hlsLatencyP50} | HLS ${plain.hlsLatencyP50}`],
      ['hls.js target latency (ms)', `LL-HLS ${ll.targetLatency} | HLS ${plain.targetLatency}`],
      [
        'stalls (hls.js) / waiting (video)',
        `LL-HLS ${ll.stalls} / ${ll.waiting} | HLS ${plain.stalls} / ${plain.waiting}`,
        'LL 0 / 0',
      ],
      ['picture frozen (ms, 100 ms samples)', `LL-HLS ${ll.frozenMs} | HLS ${plain.frozenMs}`],
      [
        'playlist requests per viewer per s',
        `LL-HLS ${ll.playlistRequestsPerSecond} | HLS ${plain.playlistRequestsPerSecond}`,
      ],
      ['frames read (barcode)', `LL-HLS ${ll.frames} | HLS ${plain.frames}`],
      [
        'part cadence: mean / jitter (stdev) (ms)',
        `${mean.toFixed(1)} / ${jitter.toFixed(1)} over ${intervals.length}`,
      ],
      ['part gap at the failover (ms)', failoverGap === null ? '-' : String(failoverGap)],
      [
        'failover: kill -> reassigned / -> first new part (ms)',
        `${detectionMs ?? '-'} / ${firstNewPartMs ?? '-'}`,
      ],
      ['stalls before the window (start-up)', `LL-HLS ${before['LL-HLS'].stalls} | HLS ${before.HLS.stalls}`],
      [
        'failovers (s from the window start: reason)',
        failovers
          .map(
            (e) =>
              `${((Date.parse(e.at) - start) / 1000).toFixed(1)}: ${e.type === 'failover' ? e.reason : ''}`,
          )
          .join(', ') || 'none',
      ],
      ['hls.js errors (LL-HLS)', ll.errors.join(', ') || 'none'],
      ['hls.js errors (HLS)', plain.errors.join(', ') || 'none'],
      ['result', pass ? 'PASS' : 'FAIL', 'p50 <= 1500 ms, zero stalls'],
    ],
  );
  writeJson(values.json, {
    seconds,
    killedAt,
    results,
    partCadence: { meanMs: mean, jitterMs: jitter, intervals: intervals.length, failoverGapMs: failoverGap },
    failover: { detectionMs, firstNewPartMs },
    failovers,
    startupStalls: { 'LL-HLS': before['LL-HLS'].stalls, HLS: before.HLS.stalls },
    pass,
  });
} finally {
  for (const viewer of viewers) await viewer.close();
  await publisher?.stop('SIGKILL');
  await platform.stop();
}
