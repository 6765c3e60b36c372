// The media path end to end: a 640x360 RTMP publisher -> ingest -> supervisor -> transcoder worker ->
// segments in storage -> packager -> HLS through the origin. Real processes throughout.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { buckets, subjects } from '@live/contracts';
import { type Child, freePort, startPublisher } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import type { MediaPlaylist } from 'hls-parser/types.js';
import { type Platform, startPlatform, waitFor } from './platform.js';
import { checkMediaPlaylist, checkReload } from './rfc8216.js';

let p: Platform;
const publishers: Child[] = [];
/** The first segment listed, to check it is deleted once it has left the window. */
let firstSegment = '';
before(async () => {
  p = await startPlatform({ workers: 2 });
});
after(async () => {
  await Promise.all(publishers.map((x) => x.stop('SIGKILL')));
  await p?.stop();
});

const publish = (key: string) => {
  const child = startPublisher({ url: p.publishUrl(key), width: 640, height: 360, fps: 30, gopSeconds: 1 });
  publishers.push(child);
  return child;
};

/** Waits until the 360p playlist lists a segment `n` numbers past the newest one in `before`. */
function advancedBy(before: MediaPlaylist, n: number, what: string): Promise<MediaPlaylist> {
  const target = (before.segments.at(-1)?.mediaSequenceNumber ?? 0) + n;
  return waitFor(
    async () => {
      const m = await p.media('e2e', '360p');
      return m && (m.segments.at(-1)?.mediaSequenceNumber ?? 0) >= target ? m : null;
    },
    { timeoutMs: 20_000, what },
  );
}

async function probe(streamId: string, playlist: MediaPlaylist): Promise<{ width: number; height: number }> {
  const segment = playlist.segments.at(-1);
  assert.ok(segment?.map, 'a segment with its init section');
  const init = Buffer.from(
    await (await fetch(`http://127.0.0.1:${p.originPort}/hls/${streamId}/${segment.map.uri}`)).arrayBuffer(),
  );
  const media = Buffer.from(
    await (await fetch(`http://127.0.0.1:${p.originPort}/hls/${streamId}/${segment.uri}`)).arrayBuffer(),
  );
  const file = join(mkdtempSync(join(tmpdir(), 'probe-')), 'segment.mp4');
  writeFileSync(file, Buffer.concat([init, media]));
  // Not execFileSync: this process must keep reading the services' logs meanwhile, or they block on the pipe.
  const { stdout } = await promisify(execFile)(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'json', file],
    { encoding: 'utf8' },
  );
  const out = JSON.parse(stdout) as { streams: { width: number; height: number }[] };
  return out.streams[0] as { width: number; height: number };
}

test('a published stream becomes adaptive HLS: every rendition listed, valid, advancing and decodable', async () => {
  const key = await p.createKey('e2e');
  const startedAt = Date.now();
  publish(key);
  const master = await waitFor(
    async () => {
      const m = await p.master('e2e');
      return m && m.variants.length === 2 ? m : null;
    },
    { timeoutMs: 30_000, what: 'a master playlist with 2 renditions' },
  );
  const firstPlayable = Date.now() - startedAt;
  assert.deepEqual(
    master.variants.map((v) => [v.uri, v.resolution?.width, v.resolution?.height, v.frameRate]),
    [
      ['360p.m3u8', 640, 360, 30],
      ['240p.m3u8', 426, 240, 30],
    ],
  );
  for (const v of master.variants) {
    // The profile is what x264 used (ultrafast in tests: Constrained Baseline, 42c0xx), read from the init segment.
    assert.match(v.codecs ?? '', /^avc1\.(42c0|4d40|6400)[0-9a-f]{2},mp4a\.40\.2$/);
    assert.ok(v.bandwidth > (v.averageBandwidth ?? 0) && (v.averageBandwidth ?? 0) > 0);
  }

  for (const rendition of ['360p', '240p']) {
    const first = await waitFor(
      async () => {
        const m = await p.media('e2e', rendition);
        return m && m.segments.length >= 3 ? m : null;
      },
      { timeoutMs: 20_000, what: `3 segments in ${rendition}` },
    );
    assert.deepEqual(checkMediaPlaylist(first), []);
    if (rendition === '360p') firstSegment = first.segments[0]?.uri ?? '';
    const later = await waitFor(
      async () => {
        const m = await p.media('e2e', rendition);
        return m &&
          (m.segments.at(-1)?.mediaSequenceNumber ?? 0) >
            (first.segments.at(-1)?.mediaSequenceNumber ?? 0) + 1
          ? m
          : null;
      },
      { timeoutMs: 10_000, what: `${rendition} to advance` },
    );
    assert.deepEqual(checkMediaPlaylist(later), []);
    assert.deepEqual(checkReload(first, later), []);
    assert.ok(later.segments.length <= 6, 'the live window holds at most 6 segments');
    for (const s of later.segments) assert.ok(Math.abs(s.duration - 1) < 0.1, `segment of ${s.duration} s`);
    const size = await probe('e2e', later);
    assert.deepEqual(size, rendition === '360p' ? { width: 640, height: 360 } : { width: 426, height: 240 });
  }
  // Segments of both renditions line up (same boundaries: switchable at every segment).
  const [a, b] = await Promise.all([p.media('e2e', '360p'), p.media('e2e', '240p')]);
  const times = (m: MediaPlaylist | null) =>
    new Map(m?.segments.map((s) => [s.uri.replace(/360p|240p/, 'R'), s.programDateTime?.getTime()]));
  const ta = times(a);
  let shared = 0;
  for (const [uri, t] of times(b)) {
    if (ta.has(uri)) {
      shared++;
      assert.ok(
        Math.abs((ta.get(uri) ?? 0) - (t ?? 0)) < 50,
        `${uri} starts at the same time in both renditions`,
      );
    }
  }
  assert.ok(shared >= 2);
  console.log(`first playable master after ${firstPlayable} ms`);
});

test('killing and restarting the packager mid-stream loses nothing: no gap, no repeated number', async () => {
  const before = await waitFor(() => p.media('e2e', '360p'), { what: 'the live playlist' });
  await p.packager.stop('SIGKILL');
  // Segments keep being announced while the packager is down (they wait in its durable consumer): at least
  // two per rendition before it comes back.
  let announced = 0;
  const segments = p.nc.subscribe(subjects.mediaSegment('e2e'), { callback: () => void announced++ });
  await waitFor(() => announced >= 4, { what: '4 segments announced while the packager is down' });
  segments.unsubscribe();
  p.packager = await p.startPackager();
  const after = await advancedBy(before, 4, 'the playlist to advance after the restart');
  assert.deepEqual(checkMediaPlaylist(after), []);
  assert.deepEqual(checkReload(before, after), []);
  // Content has no hole: within one epoch, ffmpeg's segment numbers are consecutive.
  const numbers = after.segments.map((s) => Number(/seg_(\d+)\.m4s$/.exec(s.uri)?.[1]));
  for (let i = 1; i < numbers.length; i++)
    assert.equal(numbers[i], (numbers[i - 1] ?? 0) + 1, `segments ${numbers.join(',')}`);
  // Live only: media that left the window is deleted after the grace period (5 s here).
  assert.ok(firstSegment && !after.segments.some((s) => s.uri === firstSegment));
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${p.originPort}/hls/e2e/${firstSegment}`)).status === 404,
    {
      timeoutMs: 15_000,
      what: `${firstSegment} to be deleted`,
    },
  );
});

test('two packager replicas: only the leader writes; killing it hands over and the playlist carries on', async () => {
  const standbyPort = await freePort();
  const standby = await p.startPackager(standbyPort);
  const before = await waitFor(() => p.media('e2e', '360p'), { what: 'the live playlist' });
  // Both replicas serve the same storage; the lease says who writes: still the first one.
  const leases = await new Kvm(p.nc).open(buckets.leases);
  const holder = async () => {
    const entry = await leases.get('packager');
    return entry?.operation === 'PUT'
      ? Number(String(entry.json<{ holder: string }>().holder).split('-')[0])
      : null;
  };
  const revision = async () => (await leases.get('packager'))?.revision ?? 0;
  const first = await revision();
  await waitFor(async () => (await revision()) >= first + 2, {
    what: 'two lease renewals with a standby up',
  });
  assert.equal(await holder(), p.packager.pid);
  await p.packager.stop('SIGKILL');
  p.packager = standby;
  p.originPort = standbyPort;
  const after = await advancedBy(before, 4, 'the standby to take over and advance the playlist');
  assert.deepEqual(checkMediaPlaylist(after), []);
  assert.deepEqual(checkReload(before, after), []);
  assert.equal(await holder(), standby.pid);
});

test('a publisher that reconnects continues the same playlist after a discontinuity; ended adds ENDLIST', async () => {
  const before = await waitFor(() => p.media('e2e', '360p'), { what: 'the live playlist' });
  const epochBefore = Number(before.segments.at(-1)?.uri.split('/')[0]);
  const eventsBefore = p.events.length;
  const key = await p.createKey('e2e'); // before the kill: the reconnect grace runs from it
  await publishers.at(-1)?.stop('SIGKILL');
  publish(key);
  await waitFor(
    () => p.events.slice(eventsBefore).find((e) => e.streamId === 'e2e' && e.type === 'source_resumed'),
    { what: 'source_resumed' },
  );
  const resumed = await waitFor(
    async () => {
      const m = await p.media('e2e', '360p');
      return m?.segments.some((s) => Number(s.uri.split('/')[0]) > epochBefore && s.discontinuity) ? m : null;
    },
    { timeoutMs: 30_000, what: 'segments of the new epoch after a discontinuity' },
  );
  assert.deepEqual(checkMediaPlaylist(resumed), []);
  assert.deepEqual(checkReload(before, resumed), []);
  assert.equal(resumed.endlist, false);
  assert.ok(!p.events.slice(eventsBefore).some((e) => e.streamId === 'e2e' && e.type === 'ended'));

  // The streamer stops for good: after the grace period, `ended`, then ENDLIST on every rendition.
  await publishers.at(-1)?.stop('SIGKILL');
  await waitFor(() => p.events.find((e) => e.streamId === 'e2e' && e.type === 'ended'), {
    timeoutMs: 15_000,
    what: 'ended',
  });
  for (const rendition of ['360p', '240p']) {
    const closed = await waitFor(
      async () => {
        const m = await p.media('e2e', rendition);
        return m?.endlist ? m : null;
      },
      { timeoutMs: 15_000, what: `ENDLIST on ${rendition}` },
    );
    assert.deepEqual(checkMediaPlaylist(closed), []);
  }
});
