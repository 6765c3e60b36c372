import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SegmentEvent } from '@live/contracts';
import { parse } from 'hls-parser';
import type { MasterPlaylist, MediaPlaylist } from 'hls-parser/types.js';
import { StreamPlaylists } from '../src/playlists/stream-playlists.js';

const rendition = { name: '360p', width: 640, height: 360, fps: 30, videoKbps: 800, audioKbps: 96 };
const t0 = Date.parse('2026-11-25T10:00:00Z');
function seg(
  epoch: number,
  sequence: number,
  kind: 'init' | 'media' = 'media',
  durationMs = 1000,
): SegmentEvent {
  return {
    type: 'segment',
    id: `${epoch}-${kind}-${sequence}`,
    streamId: 'demo',
    epoch,
    workerId: `w${epoch}`,
    rendition,
    kind,
    sequence,
    durationMs,
    key: kind === 'init' ? `demo/${epoch}/360p/init.mp4` : `demo/${epoch}/360p/seg_${sequence}.m4s`,
    bytes: 100,
    programDateTime: new Date(t0 + sequence * 1000).toISOString(),
    codecs: 'avc1.64001f,mp4a.40.2',
    completedAt: t0,
  };
}
const media = (s: StreamPlaylists) => parse(s.mediaPlaylist('360p')) as MediaPlaylist;

test('segments form a sliding live window with monotonic sequence numbers', () => {
  const s = new StreamPlaylists('demo', 3);
  s.accept(seg(1, 0, 'init'));
  const removed: string[] = [];
  for (let i = 0; i < 5; i++) removed.push(...s.accept(seg(1, i)).removed.map((e) => e.key));
  const p = media(s);
  assert.equal(p.mediaSequenceBase, 2);
  assert.deepEqual(
    p.segments.map((x) => x.uri),
    ['1/360p/seg_2.m4s', '1/360p/seg_3.m4s', '1/360p/seg_4.m4s'],
  );
  assert.deepEqual(removed, ['demo/1/360p/seg_0.m4s', 'demo/1/360p/seg_1.m4s']);
  assert.equal(p.segments[0]?.map?.uri, '1/360p/init.mp4');
  assert.equal(p.targetDuration, 1);
  assert.equal(p.version, 7);
  assert.ok(p.segments.every((x) => x.programDateTime));
  assert.equal(p.endlist, false);
});

test('a new epoch starts after a discontinuity with its own init; an old epoch is fenced', () => {
  const s = new StreamPlaylists('demo', 6);
  s.accept(seg(1, 0, 'init'));
  s.accept(seg(1, 0));
  s.accept(seg(1, 1));
  s.accept(seg(2, 0, 'init'));
  s.accept(seg(2, 0));
  assert.equal(s.accept(seg(1, 2)).result, 'fenced', 'a zombie of epoch 1 is dropped');
  assert.equal(s.accept(seg(2, 0)).result, 'duplicate');
  s.accept(seg(2, 1));
  const p = media(s);
  assert.deepEqual(
    p.segments.map((x) => [x.mediaSequenceNumber, x.discontinuity ?? false, x.discontinuitySequence]),
    [
      [0, false, 0],
      [1, false, 0],
      [2, true, 1],
      [3, false, 1],
    ],
  );
  assert.equal(p.segments[2]?.map?.uri, '2/360p/init.mp4');
  // Once the discontinuity leaves the window, EXT-X-DISCONTINUITY-SEQUENCE counts it.
  for (let i = 2; i < 8; i++) s.accept(seg(2, i));
  const later = media(s);
  assert.equal(later.discontinuitySequenceBase, 1);
  assert.ok(later.segments.every((x) => !x.discontinuity));
  assert.deepEqual(s.unusedInitKeys(), ['demo/1/360p/init.mp4']);
});

test('an epoch learned from the assignment fences the old worker before the new one has written anything', () => {
  const s = new StreamPlaylists('demo', 6);
  s.accept(seg(1, 0, 'init'));
  s.accept(seg(1, 0));
  s.raiseEpoch(2);
  assert.equal(s.accept(seg(1, 1)).result, 'fenced');
});

test('target duration follows the longest segment (RFC 8216 rounding)', () => {
  const s = new StreamPlaylists('demo', 6);
  s.accept(seg(1, 0, 'init'));
  s.accept(seg(1, 0, 'media', 1000));
  s.accept(seg(1, 1, 'media', 2400));
  assert.equal(media(s).targetDuration, 2);
  s.accept(seg(1, 2, 'media', 2600));
  assert.equal(media(s).targetDuration, 3);
});

test('master playlist lists each rendition with bandwidth, resolution, frame rate and codecs', () => {
  const s = new StreamPlaylists('demo', 6);
  s.expected = ['360p'];
  assert.equal(s.masterReady(), false);
  s.accept(seg(1, 0, 'init'));
  assert.equal(s.masterReady(), true);
  const m = parse(s.masterPlaylist()) as MasterPlaylist;
  const v = m.variants[0];
  assert.equal(v?.uri, '360p.m3u8');
  assert.deepEqual(v?.resolution, { width: 640, height: 360 });
  assert.equal(v?.frameRate, 30);
  assert.equal(v?.codecs, 'avc1.64001f,mp4a.40.2');
  assert.ok((v?.bandwidth ?? 0) > (v?.averageBandwidth ?? 0));
});

test('restored from its own playlist, a stream continues the numbering with no gap or repeat', () => {
  const s = new StreamPlaylists('demo', 4);
  s.accept(seg(1, 0, 'init'));
  for (let i = 0; i < 3; i++) s.accept(seg(1, i));
  s.accept(seg(2, 0, 'init'));
  for (let i = 0; i < 3; i++) s.accept(seg(2, i));
  const saved = s.mediaPlaylist('360p');

  const restored = new StreamPlaylists('demo', 4);
  restored.restore(rendition, 'avc1.64001f,mp4a.40.2', saved);
  assert.equal(restored.currentEpoch, 2);
  assert.equal(restored.accept(seg(2, 2)).result, 'duplicate', 'a redelivered event is recognised');
  assert.equal(restored.accept(seg(1, 9)).result, 'fenced');
  restored.accept(seg(2, 3));
  const p = media(restored);
  assert.deepEqual(
    p.segments.map((x) => x.mediaSequenceNumber),
    [3, 4, 5, 6],
  );
  assert.deepEqual(
    p.segments.map((x) => x.discontinuitySequence),
    [1, 1, 1, 1],
  );
  assert.equal(p.segments.at(-1)?.uri, '2/360p/seg_3.m4s');
});

test('isListed tells live objects (window segments and their init) from stray ones', () => {
  const s = new StreamPlaylists('demo', 2);
  s.accept(seg(1, 0, 'init'));
  for (let i = 0; i < 4; i++) s.accept(seg(1, i));
  assert.equal(s.isListed('demo/1/360p/seg_3.m4s'), true);
  assert.equal(s.isListed('demo/1/360p/init.mp4'), true);
  assert.equal(s.isListed('demo/1/360p/seg_0.m4s'), false, 'left the window');
  assert.equal(s.accept(seg(1, 0)).result, 'duplicate');
});
