// bench:latency — from a frame entering ingest to the segment holding it being listed in the media
// playlist. The publisher burns its media time into the picture (clock barcode); the bench polls the top
// rendition's playlist through the origin every 50 ms, and for each new segment decodes its first frame:
//   frame entered ingest  = origin + the frame's media time, where ffmpeg -re paces from its first input
//   read, which lies between the publisher's spawn and the publish being accepted (`acceptedAt`). Both
//   origins are reported: `accepted` is a lower bound of the latency, `spawn` an upper bound.
//   latency (first frame) = listed - frame entered   (includes waiting for the 1 s segment to fill)
//   pipeline (last frame) = latency - segment duration (transcode + upload + announce + playlist)
// Target (issue 3, 1 s segments): first-frame p50 <= 1.8 s, p95 <= 2.5 s, over >= 60 segments.
//   npm run bench:latency -- [--segments 60] [--width 1280 --height 720] [--json out.json]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_LADDER } from '@live/contracts';
import { readClockBarcode, startPublisher, waitFor } from '@live/testing';
import { startPlatform } from '../tests/e2e/platform.js';
import { percentile, printTable, writeJson } from './lib.js';

const { values } = parseArgs({
  options: {
    segments: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '5' },
    width: { type: 'string', default: '1280' },
    height: { type: 'string', default: '720' },
    preset: { type: 'string', default: 'veryfast' },
    json: { type: 'string' },
  },
});
const wanted = Number(values.segments);
const warmup = Number(values.warmup);
const width = Number(values.width);
const height = Number(values.height);

const platform = await startPlatform({
  workers: 1,
  ladder: DEFAULT_LADDER,
  preset: values.preset,
  env: { LOG_LEVEL: 'info' },
});
const streamId = 'latency';
try {
  const key = await platform.createKey(streamId);
  const spawnedAt = Date.now();
  const publisher = startPublisher({
    url: platform.publishUrl(key),
    width,
    height,
    fps: 30,
    gopSeconds: 2,
    clockBarcode: true,
  });
  const started = await waitFor(
    () => platform.events.find((e) => e.streamId === streamId && e.type === 'started'),
    {
      timeoutMs: 15_000,
      what: 'started',
    },
  );
  if (started.type !== 'started') throw new Error('unexpected event');
  const t0 = started.acceptedAt;
  const assigned = await waitFor(
    () => platform.events.find((e) => e.streamId === streamId && e.type === 'assigned'),
    {
      what: 'assigned',
    },
  );
  const top = assigned.type === 'assigned' ? (assigned.renditions[0] as string) : '';
  console.log(
    `source ${width}x${height}@30, ladder ${assigned.type === 'assigned' ? assigned.renditions.join('/') : ''}, measuring on ${top}`,
  );

  const base = `http://127.0.0.1:${platform.originPort}/hls/${streamId}/`;
  const inits = new Map<string, Buffer>();
  const seen = new Map<string, { listedAt: number; durationMs: number; data: Buffer; init: Buffer }>();
  const order: string[] = [];
  while (order.length < wanted + warmup) {
    const playlist = await platform.media(streamId, top);
    const now = Date.now();
    for (const s of playlist?.segments ?? []) {
      if (seen.has(s.uri) || !s.map) continue;
      let init = inits.get(s.map.uri);
      if (!init) {
        init = Buffer.from(await (await fetch(base + s.map.uri)).arrayBuffer());
        inits.set(s.map.uri, init);
      }
      const data = Buffer.from(await (await fetch(base + s.uri)).arrayBuffer());
      seen.set(s.uri, { listedAt: now, durationMs: s.duration * 1000, data, init });
      order.push(s.uri);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await publisher.stop('SIGKILL');

  const dir = mkdtempSync(join(tmpdir(), 'latency-'));
  const firstFrame: number[] = [];
  const firstFrameUpper: number[] = [];
  const pipeline: number[] = [];
  for (const uri of order.slice(warmup)) {
    const s = seen.get(uri);
    if (!s) continue;
    const file = join(dir, 'segment.mp4');
    writeFileSync(file, Buffer.concat([s.init, s.data]));
    const gray = execFileSync(
      'ffmpeg',
      [
        '-v',
        'error',
        '-i',
        file,
        '-frames:v',
        '1',
        '-vf',
        `scale=${width}:${height},format=gray`,
        '-f',
        'rawvideo',
        '-',
      ],
      {
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    const mediaMs = readClockBarcode(gray, width, height);
    const entered = t0 + mediaMs;
    firstFrame.push(s.listedAt - entered);
    firstFrameUpper.push(s.listedAt - (spawnedAt + mediaMs));
    pipeline.push(s.listedAt - entered - s.durationMs);
  }
  const stats = (v: number[]) => ({
    p50: percentile(v, 50),
    p95: percentile(v, 95),
    max: Math.max(...v),
    min: Math.min(...v),
  });
  const result = {
    segments: firstFrame.length,
    source: `${width}x${height}@30, GOP 2 s, 1 s segments, x264 ${values.preset}`,
    rendition: top,
    pollIntervalMs: 50,
    publisherStartupMs: t0 - spawnedAt,
    firstFrameLatencyMs: stats(firstFrame),
    firstFrameSamplesMs: firstFrame.map((x) => Math.round(x)),
    firstFrameLatencyUpperBoundMs: stats(firstFrameUpper),
    pipelineLatencyMs: stats(pipeline),
  };
  printTable(
    `bench:latency — frame entering ingest -> its segment listed (${result.segments} segments, ${top})`,
    [
      ['first frame p50, upper bound (ms)', result.firstFrameLatencyUpperBoundMs.p50, '<= 1800'],
      ['first frame p95, upper bound (ms)', result.firstFrameLatencyUpperBoundMs.p95, '<= 2500'],
      ['first frame max, upper bound (ms)', result.firstFrameLatencyUpperBoundMs.max],
      ['first frame p50, lower bound (ms)', result.firstFrameLatencyMs.p50],
      ['first frame p95, lower bound (ms)', result.firstFrameLatencyMs.p95],
      ['publisher start-up (spawn -> accepted)', result.publisherStartupMs],
      ['last frame (pipeline) p50 (ms)', result.pipelineLatencyMs.p50],
      ['last frame (pipeline) p95 (ms)', result.pipelineLatencyMs.p95],
    ],
  );
  writeJson(values.json, result);
} finally {
  await platform.stop();
}
