// INGEST_READ_INTERVAL_MS: a publisher's connection is read at most once per interval (50 ms by default),
// not once per frame the encoder writes, and every frame still arrives. Two ingests side by side, one with
// the default and one reading as bytes arrive, each with one 30 fps publisher (video and audio: ~75 writes
// a second); ingest_publisher_reads_total counts the reads.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Child, startPublisher, waitFor } from '@live/testing';
import { type IngestHarness, startIngestHarness } from './harness.js';

const harnesses: IngestHarness[] = [];
const publishers: Child[] = [];
let coalesced: IngestHarness;
let asArriving: IngestHarness;

before(async () => {
  [coalesced, asArriving] = await Promise.all([
    startIngestHarness(),
    startIngestHarness({ INGEST_READ_INTERVAL_MS: '0' }),
  ]);
  harnesses.push(coalesced, asArriving);
});
after(async () => {
  await Promise.all(publishers.map((p) => p.stop('SIGKILL')));
  await Promise.all(harnesses.map((h) => h.stop()));
});

async function readsSoFar(h: IngestHarness): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${h.opsPort}/metrics`)).text();
  const match = /^ingest_publisher_reads_total(?:\{[^}]*\})? (\d+)$/m.exec(metrics);
  assert.ok(match, 'ingest_publisher_reads_total is exported');
  return Number(match[1]);
}

/** Reads per second while the ingest's health reports 10 more times (~2 s), and the fps it reported. */
async function measure(
  h: IngestHarness,
  streamId: string,
): Promise<{ readsPerSecond: number; fps: number[] }> {
  const key = await h.createKey(streamId);
  publishers.push(
    startPublisher({ url: h.publishUrl(key), width: 320, height: 180, fps: 30, gopSeconds: 1 }),
  );
  await h.waitForEvent(streamId, 'started');
  const reports = () => h.health.filter((m) => m.streamId === streamId);
  // Past the start (the first reports cover the connection's set-up).
  await waitFor(() => reports().length >= 5, { what: `${streamId}: 5 health reports` });
  const from = reports().length;
  // Timed from before the first scrape and to after the second: the window the reads were counted in lies
  // inside, so a slow scrape cannot make the rate look higher than it is.
  const startedAt = performance.now();
  const readsBefore = await readsSoFar(h);
  await waitFor(() => reports().length >= from + 10, { what: `${streamId}: 10 more health reports` });
  const readsPerSecond = ((await readsSoFar(h)) - readsBefore) / ((performance.now() - startedAt) / 1000);
  return {
    readsPerSecond,
    fps: reports()
      .slice(from)
      .map((m) => m.fps),
  };
}

test('a publisher is read at most once per INGEST_READ_INTERVAL_MS, not once per frame, and every frame arrives', async (t) => {
  const [batched, unbatched] = await Promise.all([
    measure(coalesced, 'batched'),
    measure(asArriving, 'unbatched'),
  ]);
  t.diagnostic(
    `reads per second: ${batched.readsPerSecond.toFixed(1)} at 50 ms, ${unbatched.readsPerSecond.toFixed(1)} as bytes arrive`,
  );
  // 20 a second at most (a read, then 50 ms without one); 1 of slack for where the window falls.
  assert.ok(batched.readsPerSecond <= 21, `${batched.readsPerSecond.toFixed(1)} reads a second at 50 ms`);
  // The counter sees what it claims to: without the interval, about a read per frame the encoder writes.
  assert.ok(unbatched.readsPerSecond > 35, `${unbatched.readsPerSecond.toFixed(1)} reads a second unbatched`);
  // Batched reads lose nothing: the ingest still counts the source's 30 frames a second (give or take what a
  // busy machine does to a real-time publisher's pace).
  for (const fps of batched.fps) assert.ok(fps >= 22 && fps <= 38, `fps ${fps} with reads batched`);
});
