// When the playlists get ENDLIST: on the `ended` of the stream's current session (or when the supervisor
// marks its assignment ended), never on the `ended` of a session the streamer has left for another ingest.
// The packager runs against a real nats-server (the live-assignments bucket) and local storage, fed the
// events its consumers would hand it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connectBus, encode, provision } from '@live/bus';
import {
  type AssignmentRecord,
  assignmentRecord,
  buckets,
  type LifecycleEvent,
  type SegmentEvent,
} from '@live/contracts';
import { createLogger } from '@live/log';
import { LocalStorage } from '@live/storage';
import { type NatsServer, startNatsServer, testSource, waitFor } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { parse } from 'hls-parser';
import type { MediaPlaylist } from 'hls-parser/types.js';
import pino from 'pino';
import { Counter } from 'prom-client';
import { Packager } from '../src/packager.js';

const END_SETTLE_MS = 300;
const rendition = { name: '360p', width: 640, height: 360, fps: 30, videoKbps: 800, audioKbps: 96 };
let nats: NatsServer;
let nc: NatsConnection;
let dir: string;
let storage: LocalStorage;
let packager: Packager;
const lines: string[] = [];
const staleEnds = new Counter({ name: 'stale_ends', help: 'test', registers: [] });

let n = 0;
const event = (streamId: string, e: Record<string, unknown>) =>
  ({ id: `e${++n}`, streamId, at: new Date().toISOString(), ...e }) as LifecycleEvent;
const started = (streamId: string, sessionId: string, ingestId: string) =>
  event(streamId, { type: 'started', sessionId, source: testSource(ingestId), acceptedAt: Date.now() });
const ended = (streamId: string, sessionId: string, ingestId: string) =>
  event(streamId, { type: 'ended', sessionId, ingestId, reason: 'publisher_left', durationMs: 9000 });
function segment(streamId: string, epoch: number, sequence: number, kind: 'init' | 'media'): SegmentEvent {
  return {
    type: 'segment',
    id: `${streamId}-${epoch}-${kind}-${sequence}`,
    streamId,
    epoch,
    workerId: `w${epoch}`,
    rendition,
    kind,
    sequence,
    durationMs: kind === 'init' ? 0 : 1000,
    key: `${streamId}/${epoch}/360p/${kind === 'init' ? 'init.mp4' : `seg_${sequence}.m4s`}`,
    bytes: 100,
    programDateTime: new Date().toISOString(),
    codecs: 'avc1.64001e',
    completedAt: Date.now(),
  };
}
async function live(streamId: string, epoch: number, segments: number): Promise<void> {
  await packager.onSegment(segment(streamId, epoch, 0, 'init'));
  for (let s = 1; s <= segments; s++) await packager.onSegment(segment(streamId, epoch, s, 'media'));
}
async function playlist(streamId: string): Promise<MediaPlaylist | null> {
  const text = await storage.get(`${streamId}/360p.m3u8`);
  return text ? (parse(text.toString('utf8')) as MediaPlaylist) : null;
}

before(async () => {
  const logger = createLogger({ service: 'packager-test', level: 'fatal' });
  nats = await startNatsServer();
  nc = await connectBus({ servers: [nats.url], name: 'packager-test', logger });
  await provision(nc, logger);
  dir = mkdtempSync(join(tmpdir(), 'packager-ended-'));
  storage = new LocalStorage(dir);
  // The assignment of a stream whose sessions the packager did not hear start (it was restarted since).
  const record: AssignmentRecord = {
    streamId: 'told',
    workerId: 'w2',
    epoch: 2,
    source: testSource('ib'),
    ladder: [rendition],
    assignedAt: new Date().toISOString(),
    state: 'assigned',
    sessionId: 'sb',
  };
  await (await new Kvm(nc).open(buckets.assignments)).put('told', encode(assignmentRecord, record));
  packager = new Packager({
    nc,
    canWrite: () => true,
    storage,
    logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
    windowSegments: 6,
    deleteGraceMs: 60_000,
    endSettleMs: END_SETTLE_MS,
    metrics: {
      segments: new Counter({
        name: 'segments',
        help: 'test',
        labelNames: ['result', 'kind'],
        registers: [],
      }),
      staleEnds,
    },
  });
  await (await packager.watchAssignments(nc)).initialized;
});
after(async () => {
  packager?.stop();
  await nc?.close();
  await nats?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the ended of a session the streamer left for another ingest closes nothing; the current session's does", async () => {
  // `moved`: its first session on ingest ia, then (the publisher's connection dropped) a new one on ib.
  await packager.onLifecycle(started('moved', 'sa', 'ia'));
  await live('moved', 1, 3);
  await packager.onLifecycle(started('moved', 'sb', 'ib'));
  await live('moved', 2, 2);
  // ia's reconnect grace runs out: it ends its session, now stale. So does one for `told`, whose current
  // session the packager knows only from its assignment.
  await packager.onLifecycle(ended('moved', 'sa', 'ia'));
  await live('told', 2, 2);
  await packager.onLifecycle(ended('told', 'sa', 'ia'));
  // A stream that really ends, after both: once its ENDLIST is written, the settle time of theirs is over too.
  await packager.onLifecycle(started('control', 'sc', 'ia'));
  await live('control', 1, 2);
  await packager.onLifecycle(ended('control', 'sc', 'ia'));
  await waitFor(async () => (await playlist('control'))?.endlist, { what: "the control stream's ENDLIST" });

  for (const streamId of ['moved', 'told']) {
    const m = await playlist(streamId);
    assert.ok(m && m.segments.length > 0, `${streamId} has a playlist`);
    assert.ok(!m.endlist, `no ENDLIST on ${streamId}, live on another ingest`);
  }
  assert.equal((await staleEnds.get()).values[0]?.value, 2);
  assert.equal(lines.filter((l) => l.includes('ended of a session the stream has left')).length, 2);

  // The current session's end closes the playlists.
  await packager.onLifecycle(ended('moved', 'sb', 'ib'));
  await waitFor(async () => (await playlist('moved'))?.endlist, { what: "moved's ENDLIST" });
});
