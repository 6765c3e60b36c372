import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  InvalidSubjectTokenError,
  isStaleSessionEvent,
  LIFECYCLE_TYPES,
  lifecycleEvent,
  placementAlert,
  STREAM_ID_PATTERN,
  streamDefinitions,
  subjects,
} from '../src/index.js';

test('subjects are built from validated tokens only', () => {
  assert.equal(subjects.streamEvent('demo', 'started'), 'live.stream.demo.started');
  assert.equal(subjects.ingestHealth('demo'), 'live.health.ingest.demo');
  assert.equal(subjects.deadLetter('live.stream.demo.started'), 'live.dlq.live.stream.demo.started');
  for (const bad of ['a.b', 'a*', '>', 'a b', '']) {
    assert.throws(() => subjects.streamEvent(bad, 'started'), InvalidSubjectTokenError);
  }
});

test('every lifecycle subject and alert falls inside the LIVE_EVENTS stream, and streams do not overlap', () => {
  const events = streamDefinitions.find((d) => d.name === 'LIVE_EVENTS');
  assert.deepEqual(events?.subjects, ['live.stream.>', 'live.alert.>']);
  for (const type of LIFECYCLE_TYPES) assert.match(subjects.streamEvent('x', type), /^live\.stream\./);
  assert.match(subjects.standbyAlert, /^live\.alert\./);
  assert.equal(subjects.placementAlert('demo'), 'live.alert.placement.demo');
  assert.throws(() => subjects.placementAlert('a.b'), InvalidSubjectTokenError);
  const all = streamDefinitions.flatMap((d) => d.subjects.map((s) => s.replace('>', '')));
  for (const a of all) for (const b of all) if (a !== b) assert.ok(!a.startsWith(b), `${a} overlaps ${b}`);
});

test('stream ids are lowercase subject-safe tokens', () => {
  assert.ok(STREAM_ID_PATTERN.test('demo'));
  assert.ok(STREAM_ID_PATTERN.test('my-channel_2'));
  for (const bad of ['Demo', '-x', 'a.b', 'x'.repeat(65)]) assert.ok(!STREAM_ID_PATTERN.test(bad), bad);
});

test('lifecycle events are a discriminated union that rejects what it does not know', () => {
  const base = { id: '1', streamId: 'demo', sessionId: 's', at: new Date().toISOString() };
  const ok = lifecycleEvent.safeParse({ ...base, type: 'ended', reason: 'publisher_left', durationMs: 5 });
  assert.ok(ok.success);
  assert.ok(!lifecycleEvent.safeParse({ ...base, type: 'ended', reason: 'bored', durationMs: 5 }).success);
  assert.ok(!lifecycleEvent.safeParse({ ...base, type: 'exploded' }).success);
  assert.ok(
    !lifecycleEvent.safeParse({
      ...base,
      streamId: 'UP',
      type: 'source_stalled',
      silentForMs: 1,
      disconnected: false,
    }).success,
  );
});

test('the ladder never exceeds the source size or frame rate and keeps its aspect ratio', async () => {
  const { selectLadder } = await import('../src/index.js');
  assert.deepEqual(
    selectLadder({ width: 1280, height: 720, fps: 30 }).map(
      (r) => `${r.name} ${r.width}x${r.height}@${r.fps}`,
    ),
    ['720p 1280x720@30', '480p 854x480@30', '360p 640x360@30'],
  );
  assert.deepEqual(
    selectLadder({ width: 640, height: 360, fps: 25 }).map((r) => `${r.width}x${r.height}@${r.fps}`),
    ['640x360@25'],
  );
  // Smaller than every preset: one rendition at the source's own size.
  assert.deepEqual(
    selectLadder({ width: 320, height: 180, fps: 30 }).map((r) => `${r.name} ${r.width}x${r.height}`),
    ['180p 320x180'],
  );
  // A 4:3 source keeps its shape.
  assert.equal(selectLadder({ width: 1440, height: 1080, fps: 60 })[0]?.width, 1440);
});

test("an ingest's event of a session the stream has left is stale; the supervisor's and undated ones are not", () => {
  const current = { sessionId: 'sb', ingestId: 'ib' };
  assert.ok(isStaleSessionEvent(current, { sessionId: 'sa', ingestId: 'ia' }), 'the ingest left behind');
  assert.ok(isStaleSessionEvent(current, { sessionId: 'sa' }), 'another session, ingest not said');
  assert.ok(isStaleSessionEvent(current, { sessionId: 'sb', ingestId: 'ia' }), 'another ingest');
  assert.ok(!isStaleSessionEvent(current, { sessionId: 'sb', ingestId: 'ib' }));
  assert.ok(!isStaleSessionEvent(current, { sessionId: 'supervisor' }), "the supervisor's own");
  assert.ok(!isStaleSessionEvent(null, { sessionId: 'sa', ingestId: 'ia' }), 'nothing to compare with');
  // A record from before sessions were kept: only the ingest can tell.
  assert.ok(!isStaleSessionEvent({ sessionId: null, ingestId: 'ia' }, { sessionId: 'sa', ingestId: 'ia' }));
  assert.ok(isStaleSessionEvent({ sessionId: null, ingestId: 'ib' }, { sessionId: 'sa', ingestId: 'ia' }));
  // Events from an ingest older than the ingestId field still parse.
  const base = { id: '1', streamId: 'demo', sessionId: 's', at: new Date().toISOString() };
  assert.ok(
    lifecycleEvent.safeParse({ ...base, type: 'ended', reason: 'publisher_left', durationMs: 5 }).success,
  );
  const alert = {
    id: 'a',
    type: 'stream_waiting',
    streamId: 'demo',
    at: base.at,
    waitingSince: base.at,
    waitingMs: 0,
    workerId: null,
    waiting: 1,
  };
  assert.ok(placementAlert.safeParse(alert).success);
  assert.ok(!placementAlert.safeParse({ ...alert, type: 'stream_lost' }).success);
});
