// LL-HLS media playlists and blocking reload: every rendered playlist is parsed back with hls-parser (which
// validates LL-HLS rules itself) and checked against rfc8216bis with this file's own line reader; blocking
// requests are timed against the moment their part arrives. No fixed sleeps: tests await the promises.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLlRules, type LlPlaylistRead, readLlPlaylist } from '@live/testing';
import { parse } from 'hls-parser';
import type { MediaPlaylist } from 'hls-parser/types.js';
import {
  advancePartLimit,
  PlaylistRequestError,
  playlistResponse,
  satisfies,
  waitFor,
} from '../src/llhls/blocking-reload.js';
import { defaultUris, type LlRenditionPlaylist, LlStream, type Numbering } from '../src/llhls/ll-playlist.js';

const PART = 0.2;
const TD = 1;
const T0 = Date.parse('2025-01-01T00:00:00.000Z');

/** Plays the part cutter's role for one rendition: 5 parts of 200 ms per 1 s segment, segment events first. */
class Feeder {
  sequence = 0;
  index = 0;
  number = 0;
  mediaTime = 0;
  constructor(
    readonly playlist: LlRenditionPlaylist,
    public epoch = 1,
  ) {}
  part() {
    if (this.index === 5) {
      assert.equal(this.playlist.completeSegment({ epoch: this.epoch, sequence: this.sequence }), 'accepted');
      this.sequence++;
      this.index = 0;
    }
    const result = this.playlist.addPart({
      epoch: this.epoch,
      sequence: this.sequence,
      index: this.index,
      number: this.number,
      duration: PART,
      independent: this.index === 0,
      programDateTime: new Date(T0 + Math.round(this.mediaTime * 1000)),
    });
    assert.equal(result, 'accepted');
    this.index++;
    this.number++;
    this.mediaTime += PART;
  }
  parts(n: number) {
    for (let i = 0; i < n; i++) this.part();
  }
  /** A new epoch (another worker): its cutter starts again at segment 0, part 0. */
  restart(epoch: number) {
    this.epoch = epoch;
    this.sequence = 0;
    this.index = 0;
    this.number = 0;
  }
}

/** The LL-HLS rules (checkLlRules) plus what this playlist's in-memory model says must be there. */
function checkRules(text: string, playlist: LlRenditionPlaylist, stream: LlStream): LlPlaylistRead {
  // hls-parser validates LL-HLS rules itself (PART-TARGET, 85 % floor, parts near the end, hint, server control).
  const parsed = parse(text) as MediaPlaylist;
  assert.equal(parsed.isMasterPlaylist, false);
  const r = checkLlRules(text);
  assert.equal(r.targetDuration, TD);
  assert.equal(r.partTarget, PART);
  // The preload hint names the next part, which is exactly one part after the newest listed.
  // (None while parts are not followed: the next part's number is unknown.)
  if (!r.endlist) assert.equal(r.hints[0], playlist.partsInSync ? playlist.hintUri() : undefined);
  // Rendition reports for every other rendition, with its newest segment and part.
  const others = [...stream.renditions.values()].filter((o) => o !== playlist && o.position());
  assert.deepEqual(r.reports.map((x) => x.uri).sort(), others.map((o) => `${o.rendition}.m3u8`).sort());
  for (const report of r.reports) {
    const other = stream.renditions.get(report.uri.replace('.m3u8', ''));
    assert.deepEqual({ msn: report.lastMsn, part: report.lastPart }, other?.position());
  }
  return r;
}

const newStream = () => new LlStream({ partTarget: PART, targetDuration: TD, windowSegments: 12 });

test('playlists follow the LL-HLS rules after every part, with reports of the other renditions', () => {
  const stream = newStream();
  const names = ['360p', '720p', '1080p'];
  const feeders = names.map((n) => new Feeder(stream.rendition(n)));
  let lastSequence = -1;
  for (let i = 0; i < 100; i++) {
    for (const [k, feeder] of feeders.entries()) {
      feeder.part();
      const name = names[k] as string;
      const r = checkRules(stream.render(name), stream.rendition(name), stream);
      if (k === 0) {
        assert.ok(r.mediaSequence >= lastSequence, 'media sequence never goes back');
        lastSequence = r.mediaSequence;
      }
    }
  }
  // 20 s of parts: 19 complete segments, the window keeps 12, the 20th is being built (its 5 parts listed).
  const text = stream.render('360p');
  const r = readLlPlaylist(text);
  assert.equal(r.mediaSequence, 7);
  assert.equal(r.entries.length, 13);
  assert.equal(r.entries.at(-1)?.uri, undefined, 'the last entry is the open segment (parts, then the hint)');
  assert.equal(r.entries.at(-1)?.parts.length, 5);
  assert.match(
    text,
    /^#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6,HOLD-BACK=3,PART-HOLD-BACK=0.6$/m,
  );
  assert.match(text, /^#EXT-X-PART-INF:PART-TARGET=0.2$/m);
  assert.match(text, /^#EXT-X-PART:DURATION=0.2,URI="1\/360p\/part_95.m4s",INDEPENDENT=YES$/m);
  assert.match(text, /^#EXT-X-PRELOAD-HINT:TYPE=PART,URI="1\/360p\/part_100.m4s"$/m);
  assert.match(text, /^#EXT-X-RENDITION-REPORT:URI="720p.m3u8",LAST-MSN=19,LAST-PART=4$/m);
  // Parts are listed for segments starting less than 3 s before the end: the open one (1 s of parts so
  // far) and the segment before it; the one before that starts exactly 3 s back. PDT on each segment.
  assert.deepEqual(
    r.entries.map((e) => e.parts.length),
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 5],
  );
  assert.equal(r.entries[0]?.pdt, '2025-01-01T00:00:07.000Z');
  assert.equal(r.entries[0]?.uri, '1/360p/seg_7.m4s');
  assert.equal(r.entries[0]?.map, '1/360p/init.mp4');

  // Right after a segment completes and before the next part: the hint stands alone for the next segment.
  const alone = new Feeder(stream.rendition('480p'));
  alone.parts(5);
  stream.rendition('480p').completeSegment({ epoch: 1, sequence: 0 });
  const a = checkRules(stream.render('480p'), stream.rendition('480p'), stream);
  assert.equal(a.entries.length, 1);
  assert.deepEqual(a.hints, ['1/480p/part_5.m4s']);
});

test('parts followed again mid-stream: segments only until a part starts the segment after the last complete one; no segment skipped, none listed with some parts', () => {
  const stream = newStream();
  const playlist = stream.rendition('360p');
  /** Part `index` of segment `sequence` (5 parts a segment), of epoch 1 unless said. */
  const part = (sequence: number, index: number, epoch = 1) =>
    playlist.addPart({
      epoch,
      sequence,
      index,
      number: sequence * 5 + index,
      duration: PART,
      independent: index === 0,
      programDateTime: new Date(T0 + (sequence * 5 + index) * 200),
    });
  const segment = (sequence: number) => playlist.completeSegment({ epoch: 1, sequence, duration: 1 });
  const read = () => checkRules(stream.render('360p'), playlist, stream);
  // Followed from the start: segment 0, then 2 parts of segment 1.
  for (let i = 0; i < 5; i++) assert.equal(part(0, i), 'accepted');
  assert.equal(part(1, 0), 'accepted');
  assert.equal(segment(0), 'duplicate', 'segment 0 was completed by the next part');
  assert.equal(part(1, 1), 'accepted');
  // Unwatched: parts are not heard; the open segment is no longer listed, no hint.
  stream.stopFollowingParts();
  assert.equal(playlist.partsInSync, false);
  let r = read();
  assert.deepEqual(
    r.entries.map((e) => [e.msn, e.uri, e.parts.length]),
    [[0, '1/360p/seg_0.m4s', 5]],
  );
  assert.deepEqual(r.hints, []);
  assert.equal(part(1, 2), 'unfollowed', 'a part still in flight is ignored');
  // Segment events keep the numbering: segment 1 (parts missed) and 2 are complete, as segments only.
  assert.equal(segment(1), 'accepted');
  assert.equal(segment(2), 'accepted');
  r = read();
  assert.deepEqual(
    r.entries.map((e) => [e.msn, e.uri, e.parts.length]),
    [
      [0, '1/360p/seg_0.m4s', 0], // 3 s from the end now: no parts (6.2.2)
      [1, '1/360p/seg_1.m4s', 0],
      [2, '1/360p/seg_2.m4s', 0],
    ],
  );
  assert.equal(r.entries[1]?.duration, 1, 'the segment event gave its duration, not its 2 known parts');
  // Watched again mid-segment 3: its parts are queued, not listed (their first ones were missed).
  stream.followParts();
  assert.equal(part(3, 2), 'queued');
  assert.equal(part(3, 3), 'queued');
  assert.equal(part(3, 4), 'queued');
  // Segment 4 starts before the event completing segment 3 arrives (the usual order): still queued, since
  // listing segment 4 now would skip segment 3.
  assert.equal(part(4, 0), 'queued');
  assert.equal(playlist.partsInSync, false);
  assert.deepEqual(read().hints, []);
  // Segment 3's event: then segment 4's queued part is listed, and parts are listed as they come again.
  assert.equal(segment(3), 'accepted');
  assert.equal(playlist.partsInSync, true);
  assert.equal(part(4, 1), 'accepted');
  r = read();
  assert.deepEqual(
    r.entries.map((e) => [e.msn, e.uri, e.parts.length]),
    [
      [0, '1/360p/seg_0.m4s', 0],
      [1, '1/360p/seg_1.m4s', 0],
      [2, '1/360p/seg_2.m4s', 0],
      [3, '1/360p/seg_3.m4s', 0], // its parts were heard from the middle on: a segment only
      [4, undefined, 2],
    ],
  );
  assert.deepEqual(r.hints, ['1/360p/part_22.m4s']);
  assert.deepEqual(playlist.position(), { msn: 4, part: 1 });
  // Unwatched mid-segment 5 and watched again before its event: segment 5 is only ever a segment.
  for (let i = 2; i < 5; i++) part(4, i);
  assert.equal(part(5, 0), 'accepted');
  stream.stopFollowingParts();
  stream.followParts();
  assert.equal(part(5, 1), 'queued');
  assert.equal(part(6, 0), 'queued', 'segment 5 (dropped when unwatched) is listed from its event first');
  assert.equal(segment(4), 'duplicate');
  assert.equal(segment(5), 'accepted');
  assert.equal(playlist.partsInSync, true);
  r = read();
  assert.deepEqual(
    r.entries.slice(-3).map((e) => [e.msn, e.uri, e.parts.length, e.duration]),
    [
      [4, '1/360p/seg_4.m4s', 5, 1],
      [5, '1/360p/seg_5.m4s', 0, 1], // near the end, but its parts were missed: a segment only
      [6, undefined, 1, undefined],
    ],
  );
  // A part lost while following (its fetch failed): its segment is listed without parts from then on, with
  // its event's duration, and parts are listed again from the next segment start. A late part is only late.
  const at = playlist.position();
  assert.deepEqual(at, { msn: 6, part: 0 });
  assert.equal(part(6, 1), 'accepted');
  assert.equal(part(6, 0), 'duplicate');
  assert.equal(part(6, 3), 'queued', 'part 2 was lost: resync');
  assert.equal(playlist.partsInSync, false);
  assert.deepEqual(read().hints, [], 'no hint: the next part is not listed in order any more');
  assert.equal(part(7, 0), 'queued');
  assert.equal(segment(6), 'accepted');
  assert.equal(playlist.partsInSync, true);
  r = read();
  assert.deepEqual(
    r.entries.slice(-2).map((e) => [e.msn, e.uri, e.parts.length, e.duration]),
    [
      [6, '1/360p/seg_6.m4s', 0, 1],
      [7, undefined, 1, undefined],
    ],
  );
  // Unwatched, then a segment event missing (its upload failed): the next one follows a discontinuity.
  stream.stopFollowingParts();
  assert.equal(segment(7), 'accepted', 'the open segment was dropped; its event lists it');
  assert.equal(segment(9), 'accepted', 'segment 8 never announced');
  r = read();
  assert.deepEqual(
    r.entries.slice(-3).map((e) => [e.msn, e.uri, e.discontinuity]),
    [
      [6, '1/360p/seg_6.m4s', false],
      [7, '1/360p/seg_7.m4s', false],
      [8, '1/360p/seg_9.m4s', true],
    ],
  );
  // A new epoch (failover) while unwatched: nothing to truncate; watched again from the middle of its first
  // segment, which its event lists first (not skipped).
  playlist.raiseEpoch(2);
  stream.followParts();
  assert.equal(part(0, 3, 2), 'queued');
  assert.equal(part(0, 4, 2), 'queued');
  assert.equal(part(1, 0, 2), 'queued', 'segment 0 of the epoch first');
  assert.equal(playlist.completeSegment({ epoch: 2, sequence: 0, duration: 1 }), 'accepted');
  assert.equal(playlist.partsInSync, true);
  r = read();
  assert.deepEqual(
    r.entries.slice(-3).map((e) => [e.msn, e.uri, e.discontinuity, e.parts.length]),
    [
      [8, '1/360p/seg_9.m4s', true, 0],
      [9, '2/360p/seg_0.m4s', true, 0],
      [10, undefined, false, 1],
    ],
  );
  // Ended while resyncing: ENDLIST, nothing held, no hint.
  stream.stopFollowingParts();
  stream.followParts();
  assert.equal(playlist.awaitingParts, true);
  playlist.end();
  assert.equal(playlist.awaitingParts, false);
  assert.equal(readLlPlaylist(stream.render('360p')).endlist, true);

  // A stream watched from its start (nothing complete yet) lists its first part at once.
  const fresh = newStream();
  fresh.stopFollowingParts();
  fresh.followParts();
  const first = fresh.rendition('360p');
  assert.equal(
    first.addPart({ epoch: 1, sequence: 0, index: 0, number: 0, duration: PART, independent: true }),
    'accepted',
  );
  assert.equal(first.partsInSync, true);
  // A rendition heard of mid-stream while followed lists parts from a segment start: no hint of part 0.
  const late = fresh.rendition('240p');
  assert.equal(late.completeSegment({ epoch: 1, sequence: 4, duration: 1 }), 'accepted');
  assert.equal(late.partsInSync, false);
  assert.deepEqual(readLlPlaylist(fresh.render('240p')).hints, []);
  assert.equal(
    late.addPart({ epoch: 1, sequence: 5, index: 0, number: 25, duration: PART, independent: true }),
    'accepted',
  );
  assert.deepEqual(readLlPlaylist(fresh.render('240p')).hints, ['1/240p/part_26.m4s']);
});

test('epoch change mid-segment: the old segment ends, a discontinuity and a new map start the next; zombies are fenced', () => {
  const stream = newStream();
  const playlist = stream.rendition('360p');
  const feeder = new Feeder(playlist, 1);
  feeder.parts(12); // 2 complete segments + 2 parts of the third
  feeder.restart(2);
  feeder.part(); // the new worker's first part
  let text = stream.render('360p');
  let r = checkRules(text, playlist, stream);
  assert.deepEqual(
    r.entries.map((e) => [e.msn, e.uri ?? 'open', e.duration ?? null, e.discontinuity, e.map ?? null]),
    [
      [0, '1/360p/seg_0.m4s', 1, false, '1/360p/init.mp4'],
      [1, '1/360p/seg_1.m4s', 1, false, null],
      // The interrupted segment is closed with the 2 parts it had (served as their concatenation).
      [2, '1/360p/seg_2.m4s', 0.4, false, null],
      [3, 'open', null, true, '2/360p/init.mp4'],
    ],
  );
  assert.equal(playlist.segments.at(-1)?.truncated, true);
  // hls-parser agrees on the discontinuity and the new init segment.
  const parsed = parse(text) as MediaPlaylist;
  assert.equal(parsed.segments[3]?.discontinuity, true);
  assert.equal(parsed.segments[3]?.map?.uri, '2/360p/init.mp4');
  assert.match(
    text,
    /#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="2\/360p\/init.mp4"\n#EXT-X-PROGRAM-DATE-TIME:.*\n#EXT-X-PART:/,
  );
  assert.equal(r.hints[0], '2/360p/part_1.m4s');

  // A zombie of epoch 1 sends another part and a segment: refused, never listed.
  assert.equal(
    playlist.addPart({ epoch: 1, sequence: 2, index: 2, number: 12, duration: PART, independent: false }),
    'fenced',
  );
  assert.equal(playlist.completeSegment({ epoch: 1, sequence: 2 }), 'fenced');
  assert.equal(stream.render('360p'), text);
  // Duplicates within the epoch are refused too (a gap, a lost part, resyncs: see the next test).
  assert.equal(
    playlist.addPart({ epoch: 2, sequence: 0, index: 0, number: 0, duration: PART, independent: true }),
    'duplicate',
  );

  // The assignment moves on (epoch 3) before its worker sends anything: epoch 2 is fenced from now on.
  feeder.parts(6); // epoch 2: segment 0 complete + first part of segment 1
  playlist.raiseEpoch(3);
  assert.equal(
    playlist.addPart({ epoch: 2, sequence: 1, index: 1, number: 6, duration: PART, independent: false }),
    'fenced',
  );
  feeder.restart(3);
  feeder.parts(61);
  text = stream.render('360p');
  r = checkRules(text, playlist, stream);
  // Media sequence numbers kept counting across epochs; both discontinuities have left the 12-segment window
  // and EXT-X-DISCONTINUITY-SEQUENCE counts them, so every segment keeps its discontinuity sequence number.
  assert.equal(r.mediaSequence, playlist.segments[0]?.msn);
  assert.equal(r.discontinuitySequence, 2);
  assert.ok(!text.includes('#EXT-X-DISCONTINUITY\n'));
});

/**
 * live-ll-numbering as the origins use it (ll-origin.ts; the bucket itself is in the e2e test): the owner
 * shares its numbering where it starts or moves and follows it at once, the others follow what was shared.
 */
function sharedNumbering() {
  const bucket = new Map<string, Numbering>();
  const writes: Numbering[] = [];
  const replicas: { stream: LlStream; owner: () => boolean }[] = [];
  const replica = (owner: () => boolean): LlStream => {
    const stream: LlStream = new LlStream({
      partTarget: PART,
      targetDuration: TD,
      windowSegments: 12,
      numbering: {
        get: (rendition) => bucket.get(rendition),
        owns: owner,
        segmentStarted: (rendition, n) => {
          const known = bucket.get(rendition);
          const same =
            known?.epoch === n.epoch &&
            known.msn - known.sequence === n.msn - n.sequence &&
            known.dsn === n.dsn;
          if (!owner() || same) return;
          bucket.set(rendition, n);
          writes.push(n);
          // Every replica's watch, the writer's first.
          stream.renditions.get(rendition)?.align(n);
          for (const other of replicas) other.stream.renditions.get(rendition)?.align(n);
        },
      },
    });
    replicas.push({ stream, owner });
    return stream;
  };
  return { bucket, writes, replica };
}

/** A replica that hears no parts (not watched through it): segment events only. */
function segmentsOnly(stream: LlStream): LlRenditionPlaylist {
  stream.stopFollowingParts();
  return stream.rendition('360p');
}

const numbersOf = (playlist: LlRenditionPlaylist) =>
  new Map(playlist.segments.map((s) => [`${s.epoch}/${s.sequence}`, [s.msn, s.dsn]]));

/** Every segment `follower` lists has the owner's numbers; at least `min` of them; the window is contiguous. */
function sameNumbers(owner: LlRenditionPlaylist, follower: LlRenditionPlaylist, what: string, min = 3): void {
  const mine = numbersOf(owner);
  assert.ok(follower.segments.length >= min, `${what}: ${follower.segments.length} segments`);
  for (const [segment, n] of numbersOf(follower))
    assert.deepEqual(n, mine.get(segment), `${what}: ${segment}`);
  follower.segments.forEach((s, i) => {
    assert.equal(s.msn, (follower.segments[0]?.msn ?? 0) + i, what);
  });
  assert.ok(
    follower.segments.every((s) => s.msn >= 0 && s.dsn >= 0),
    `${what}: no negative numbers`,
  );
}

test('shared numbering: replicas that heard different things (started later, not following parts at a failover, restarted) number every segment as the owner does', () => {
  const { writes, replica } = sharedNumbering();
  const ownerStream = replica(() => true);
  const owner = ownerStream.rendition('360p');
  const feeder = new Feeder(owner, 1);
  feeder.parts(41); // epoch 1: segments 0-7, and the first part of 8

  // A replica started later hears segment events from segment 3 on, and no parts (nobody watches through it).
  const later = segmentsOnly(replica(() => false));
  for (let sequence = 3; sequence <= 7; sequence++)
    later.completeSegment({ epoch: 1, sequence, duration: 1 });
  assert.equal(later.segments[0]?.msn, 3, 'numbered from the shared numbering, not from 0');
  sameNumbers(owner, later, 'started later');

  // Failover mid-segment 8: the owner (following parts) closes it truncated, the later replica never hears of
  // it. Positionally they would number epoch 2 one apart.
  feeder.parts(2);
  owner.raiseEpoch(2);
  later.raiseEpoch(2);
  feeder.restart(2);
  feeder.parts(16); // epoch 2: segments 0-2, and the first part of 3
  for (let sequence = 0; sequence <= 2; sequence++)
    later.completeSegment({ epoch: 2, sequence, duration: 1 });
  assert.equal(owner.segments.find((s) => s.truncated)?.msn, 8, 'the owner lists the truncated segment');
  assert.deepEqual(
    later.segments.map((s) => [s.epoch, s.sequence, s.msn]),
    [
      [2, 0, 9],
      [2, 1, 10],
      [2, 2, 11],
    ],
    "the new epoch numbered as the owner's; the older epoch, numbered differently here, left the window",
  );
  sameNumbers(owner, later, 'after the failover');
  checkLlRules(later.render());
  // The owner wrote twice: where its numbering started, and where the failover moved it.
  assert.deepEqual(writes, [
    { epoch: 1, sequence: 0, msn: 0, dsn: 0 },
    { epoch: 2, sequence: 0, msn: 9, dsn: 1 },
  ]);

  // A replica restarted now (or a new one) continues the same numbers from what it reads at start.
  const restarted = segmentsOnly(replica(() => false));
  feeder.parts(10); // epoch 2: segments 3, 4 complete
  for (let sequence = 1; sequence <= 4; sequence++)
    restarted.completeSegment({ epoch: 2, sequence, duration: 1 });
  sameNumbers(owner, restarted, 'restarted');
  // So does a restarted owner (its first segment takes the shared numbers; it shares nothing new).
  const restartedOwner = segmentsOnly(replica(() => true));
  for (let sequence = 2; sequence <= 4; sequence++)
    restartedOwner.completeSegment({ epoch: 2, sequence, duration: 1 });
  sameNumbers(owner, restartedOwner, 'restarted owner');
  assert.equal(writes.length, 2, 'nothing written while the numbering just follows on');
  // The owner itself never moved: its players saw no jump (epoch 1 from 0, epoch 2 after the truncated 8).
  assert.ok(owner.segments.length >= 10);
  for (const s of owner.segments) assert.equal(s.msn, s.epoch === 1 ? s.sequence : 9 + s.sequence);
});

test('shared numbering: a segment event lost (its upload failed) moves only the numbering of replicas that did not list its parts; an older or conflicting numbering', () => {
  const { writes, replica } = sharedNumbering();
  const owner = replica(() => true).rendition('360p');
  const feeder = new Feeder(owner, 1);
  const follower = segmentsOnly(replica(() => false));
  // Segments 0-4 through both; segment 5's event never comes (the owner lists it from its parts).
  feeder.parts(31); // segments 0-5 complete (by the parts of 6), the first part of 6
  for (let sequence = 0; sequence <= 4; sequence++)
    follower.completeSegment({ epoch: 1, sequence, duration: 1 });
  feeder.parts(5); // segment 6 complete, the first part of 7
  follower.completeSegment({ epoch: 1, sequence: 6, duration: 1 });
  // Alone, the follower would number 6 as 5, after a discontinuity; it takes the owner's numbers instead,
  // and the segments before its gap leave its window (it has no segment 5 to go between).
  assert.deepEqual(
    follower.segments.map((s) => [s.sequence, s.msn, s.dsn, s.discontinuity]),
    [[6, 6, 0, false]],
  );
  sameNumbers(owner, follower, 'after its gap', 1);
  checkLlRules(follower.render());
  assert.equal(writes.length, 1, 'the owner had no gap: nothing new to share');
  // The follower goes on in step.
  feeder.parts(10);
  for (let sequence = 7; sequence <= 8; sequence++)
    follower.completeSegment({ epoch: 1, sequence, duration: 1 });
  sameNumbers(owner, follower, 'after its gap', 3);

  // A gap the owner has too (not following parts either): it shares its moved numbering (after a
  // discontinuity), and the follower that had the same gap keeps the same numbers.
  const ownerWithoutParts = segmentsOnly(replica(() => true));
  const followerWithoutParts = segmentsOnly(replica(() => false));
  for (const p of [ownerWithoutParts, followerWithoutParts]) {
    for (let sequence = 0; sequence <= 3; sequence++) p.completeSegment({ epoch: 5, sequence, duration: 1 });
    p.completeSegment({ epoch: 5, sequence: 5, duration: 1 });
  }
  assert.deepEqual(writes.slice(1), [
    { epoch: 5, sequence: 0, msn: 0, dsn: 0 },
    { epoch: 5, sequence: 5, msn: 4, dsn: 1 },
  ]);
  sameNumbers(ownerWithoutParts, followerWithoutParts, 'the same gap', 5);

  // A late numbering of an older epoch changes nothing.
  const before = numbersOf(followerWithoutParts);
  followerWithoutParts.align({ epoch: 4, sequence: 0, msn: 100, dsn: 7 });
  followerWithoutParts.completeSegment({ epoch: 5, sequence: 6, duration: 1 });
  for (const [segment, n] of before) assert.deepEqual(numbersOf(followerWithoutParts).get(segment), n);

  // Two replicas that both wrote (everything just started): the one whose numbering lost renumbers, and
  // drops what it cannot number (no negative numbers, the window contiguous).
  const conflicting = segmentsOnly(replica(() => false));
  for (let sequence = 3; sequence <= 6; sequence++)
    conflicting.completeSegment({ epoch: 9, sequence, duration: 1 });
  conflicting.align({ epoch: 9, sequence: 5, msn: 0, dsn: 0 });
  assert.deepEqual(
    conflicting.segments.map((s) => [s.sequence, s.msn, s.dsn]),
    [
      [5, 0, 0],
      [6, 1, 0],
    ],
  );
  checkLlRules(conflicting.render());
});

test('delta updates (_HLS_skip=YES|v2) replace the segments before the skip boundary with EXT-X-SKIP', () => {
  const stream = newStream();
  const playlist = stream.rendition('360p');
  new Feeder(playlist).parts(62); // 12 complete segments + 2 parts: 12.4 s
  new Feeder(stream.rendition('720p')).parts(62);
  const full = stream.render('360p');
  const delta = stream.render('360p', 'YES');
  const r = checkRules(delta, playlist, stream);
  // The skip boundary is 6 s before the end (12.4 s): segments ending at or before 6.4 s (0..5) are skipped.
  assert.equal(r.skip?.['SKIPPED-SEGMENTS'], '6');
  assert.equal(r.version, 9, 'EXT-X-SKIP needs version 9 (rfc8216bis section 8)');
  assert.equal(r.entries[0]?.uri, '1/360p/seg_6.m4s');
  assert.equal(r.entries[0]?.msn, 6);
  const parsed = parse(delta) as MediaPlaylist;
  assert.equal(parsed.skip, 6);
  assert.equal(parsed.segments[0]?.mediaSequenceNumber, 6);
  // Everything after the skipped segments is as in the full playlist (6.2.5.1: all tags not skipped remain),
  // except the EXT-X-MAP the first remaining segment needs.
  const tail = (text: string) => text.slice(text.indexOf('#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:06'));
  assert.equal(tail(delta), tail(full));
  assert.match(delta, /#EXT-X-MAP:URI="1\/360p\/init.mp4"\n#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:06/);
  // v2 also skips date ranges: none here, but the attribute listing removed ones is required.
  assert.match(
    stream.render('360p', 'v2'),
    /^#EXT-X-SKIP:SKIPPED-SEGMENTS=6,RECENTLY-REMOVED-DATERANGES=""$/m,
  );
  // Too short to skip anything: a full playlist. After ENDLIST: _HLS_skip is ignored (6.2.5.1-M5).
  const short = newStream();
  new Feeder(short.rendition('360p')).parts(20);
  assert.ok(!short.render('360p', 'YES').includes('EXT-X-SKIP'));
  playlist.end();
  assert.ok(!stream.render('360p', 'YES').includes('EXT-X-SKIP'));
  assert.match(stream.render('360p'), /#EXT-X-ENDLIST/);
});

test('blocking reload: held until the part exists, answered in the same tick it arrives', async (t) => {
  const stream = newStream();
  const playlist = stream.rendition('360p');
  const feeder = new Feeder(playlist);
  feeder.parts(27); // segments 0-4 complete, segment 5 has parts 0 and 1
  assert.deepEqual(playlist.position(), { msn: 5, part: 1 });
  assert.equal(satisfies(playlist, 5, 1), true);
  await waitFor(playlist, 5, 1); // already there: answered at once
  await waitFor(playlist, 2, 9); // a segment that is long complete (M4): at once

  // Next part: held; resolved in the same tick the part is added: before the event loop runs anything else
  // (a setImmediate queued right after the part). A fact, not a wall-clock bound a busy machine could break.
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
  let settled = false;
  const held = waitFor(playlist, 5, 2).then(() => {
    settled = true;
  });
  await nextTurn();
  assert.equal(settled, false, 'held while the part does not exist');
  feeder.part();
  await nextTurn();
  assert.equal(settled, true, 'answered in the tick its part arrived');
  await held;

  // A live producer (a part every 200 ms from a timer): each held request is answered in the tick its part
  // lands. The delays are printed for the curious; the assertion is about order, not time.
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    const { msn, part } = playlist.position() ?? assert.fail('no position');
    const next = part === 4 ? { msn: msn + 1, part: 0 } : { msn, part: part + 1 };
    let answered = false;
    const request = waitFor(playlist, next.msn, next.part).then(() => {
      answered = true;
      return performance.now();
    });
    const landed = new Promise<{ at: number; answeredBeforeNextTurn: boolean }>((resolve) => {
      setTimeout(() => {
        const at = performance.now();
        feeder.part();
        setImmediate(() => resolve({ at, answeredBeforeNextTurn: answered }));
      }, 200);
    });
    const [answeredAt, arrival] = await Promise.all([request, landed]);
    assert.ok(arrival.answeredBeforeNextTurn, `request ${i} for part ${next.msn}.${next.part} answered late`);
    delays.push(answeredAt - arrival.at);
  }
  t.diagnostic(`held requests answered ${delays.map((d) => d.toFixed(2)).join(', ')} ms after their part`);

  // A part index past the last part of a complete segment means part 0 of the next one (6.2.5.2-M3).
  feeder.parts(5 - feeder.index); // complete segment 6's parts
  playlist.completeSegment({ epoch: 1, sequence: feeder.sequence });
  feeder.sequence++;
  feeder.index = 0;
  const lastMsn = playlist.lastCompleteMsn();
  let beyondDone = false;
  const beyond = waitFor(playlist, lastMsn, 5).then(() => {
    beyondDone = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(beyondDone, false);
  feeder.part();
  await beyond;
  // _HLS_msn alone waits for the whole segment, not its first parts (6.2.5.2-M1).
  let segmentDone = false;
  const whole = waitFor(playlist, lastMsn + 1, undefined).then(() => {
    segmentDone = true;
  });
  feeder.parts(4);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(segmentDone, false, 'parts alone do not make the segment');
  feeder.part(); // completes the segment, then starts the next
  await whole;
});

test('blocking reload: 400 when asked too far ahead, 503 after the hold time, released by the end', async () => {
  const stream = newStream();
  const playlist = stream.rendition('360p');
  const feeder = new Feeder(playlist);
  feeder.parts(27); // last complete segment 4; newest part (5, 1)
  assert.equal(advancePartLimit(0.2), 15);
  assert.equal(advancePartLimit(2), 3);
  const rejects = (p: Promise<void>, status: number, message: RegExp) =>
    assert.rejects(
      p,
      (e: unknown) => e instanceof PlaylistRequestError && e.status === status && message.test(e.message),
    );
  // More than 2 segments ahead of the last complete one (4): 7 is refused at once, 6 is held.
  await rejects(waitFor(playlist, 7, undefined), 400, /more than 2 segments ahead/);
  await rejects(waitFor(playlist, 7, 0), 400, /more than 2 segments ahead/);
  // More parts ahead than the Advance Part Limit (15 parts of 200 ms = 3 s).
  await rejects(waitFor(playlist, 5, 1 + 16), 400, /parts ahead \(limit 15\)/);

  // Nothing arrives: 503 once the hold time is over (default 3 x TARGETDURATION; short here).
  const started = performance.now();
  await rejects(waitFor(playlist, 5, 2, 150), 503, /did not appear within 150 ms/);
  const waited = performance.now() - started;
  // A Node timer counts from the event loop's cached time, which can lag the clock by the current turn's
  // work: it may seem to fire a few ms early.
  assert.ok(waited >= 140 && waited < 1000, `503 after ${waited.toFixed(0)} ms`);

  // The stream ends while requests are held: they are answered (with ENDLIST), and later ones at once.
  const heldAtEnd = waitFor(playlist, 6, 0);
  playlist.end();
  await heldAtEnd;
  await waitFor(playlist, 6, 3);
});

test('request adapter: query directives to status, headers and playlist', async () => {
  const stream = newStream();
  const playlist = stream.rendition('360p');
  const feeder = new Feeder(playlist);
  new Feeder(stream.rendition('720p')).parts(62);
  feeder.parts(62);
  const q = (s: string) => new URLSearchParams(s);

  const plain = await playlistResponse(stream, '360p', q(''));
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['content-type'], 'application/vnd.apple.mpegurl');
  assert.equal(plain.headers['cache-control'], 'no-cache');
  assert.equal(plain.body, stream.render('360p'));

  // Held until part 2 of segment 12 exists, then the playlist that has it, cacheable for a few seconds.
  const pending = playlistResponse(stream, '360p', q('_HLS_msn=12&_HLS_part=2&_HLS_skip=YES'));
  feeder.part();
  const blocked = await pending;
  assert.equal(blocked.status, 200);
  assert.equal(blocked.headers['cache-control'], 'public, max-age=6');
  assert.match(blocked.body, /^#EXT-X-SKIP:SKIPPED-SEGMENTS=\d+$/m);
  assert.match(blocked.body, /URI="1\/360p\/part_62.m4s"/);

  assert.equal(
    (await playlistResponse(stream, '360p', q('_HLS_part=1'))).status,
    400,
    '_HLS_part without _HLS_msn',
  );
  assert.equal((await playlistResponse(stream, '360p', q('_HLS_msn=-1'))).status, 400);
  assert.equal((await playlistResponse(stream, '360p', q('_HLS_msn=1e3'))).status, 400);
  assert.equal((await playlistResponse(stream, '360p', q('_HLS_skip=NO'))).status, 400);
  assert.equal((await playlistResponse(stream, '360p', q('_HLS_msn=99'))).status, 400);
  assert.equal((await playlistResponse(stream, '240p', q(''))).status, 404);
  const timeout = await playlistResponse(stream, '360p', q('_HLS_msn=12&_HLS_part=4'), 100);
  assert.equal(timeout.status, 503);
  assert.equal(timeout.headers['retry-after'], '1');
  assert.deepEqual(defaultUris('x').segment(3, 4), '3/x/seg_4.m4s');
});

test('a playlist with no complete segment yet (a new stream) is held until it has one: players see no segment in parts alone', async () => {
  const stream = newStream();
  const playlist = stream.rendition('360p');
  const feeder = new Feeder(playlist);
  feeder.parts(3); // parts 0-2 of segment 0, which is still being cut
  const q = (s: string) => new URLSearchParams(s);
  let settled = false;
  const plain = playlistResponse(stream, '360p', q('')).then((r) => {
    settled = true;
    return r;
  });
  const blocking = playlistResponse(stream, '360p', q('_HLS_msn=0&_HLS_part=2'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled, false, 'held while the playlist has only parts');
  feeder.parts(3); // parts 3-4, then part 0 of segment 1 completes segment 0
  for (const response of [await plain, await blocking]) {
    assert.equal(response.status, 200);
    assert.match(
      response.body,
      /^#EXTINF:1,\n1\/360p\/seg_0\.m4s$/m,
      'the answer lists the complete segment',
    );
  }
  const waiting = newStream();
  new Feeder(waiting.rendition('360p')).parts(2);
  const timeout = await playlistResponse(waiting, '360p', q(''), 100);
  assert.equal(timeout.status, 503, 'a stream stuck in its first segment: Service Unavailable, retry');
  assert.equal(timeout.headers['retry-after'], '1');
  assert.match(timeout.body, /360p: a first segment did not appear within 100 ms/);
  // A blocking request held for its part, then for the first segment: one hold in all, not one each.
  const both = newStream();
  const bothFeeder = new Feeder(both.rendition('360p'));
  bothFeeder.parts(2);
  const askedAt = Date.now();
  // A hold of 1 s with the part at 600 ms: one shared hold answers at about 1000 ms, one hold each at 1600 ms
  // or later. The bound between them leaves 400 ms for a busy machine's late timers.
  const held = playlistResponse(both, '360p', q('_HLS_msn=0&_HLS_part=3'), 1000);
  setTimeout(() => bothFeeder.parts(2), 600); // part 3 arrives 600 ms in; segment 0 stays open
  const answer = await held;
  assert.equal(answer.status, 503);
  const heldMs = Date.now() - askedAt;
  assert.ok(heldMs < 1400, `held ${heldMs} ms: the part's wait and the first segment's share the 1 s`);
});

test('a playlist whose parts are not followed yet (its first LL request) is held until a segment is listed with its parts; as it is if they do not come', async () => {
  const stream = newStream();
  const playlist = stream.rendition('360p');
  const feeder = new Feeder(playlist);
  feeder.parts(7); // segment 0 complete, parts 0-1 of segment 1
  stream.stopFollowingParts();
  assert.equal(playlist.completeSegment({ epoch: 1, sequence: 1, duration: 1 }), 'accepted');
  stream.followParts();
  const q = (s: string) => new URLSearchParams(s);
  let settled = false;
  const held = playlistResponse(stream, '360p', q('')).then((r) => {
    settled = true;
    return r;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled, false, 'held while parts are not listed as they come');
  // Segment 2 is heard from its first part: parts are listed again, but a player joining now would start a
  // segment back, in segment 1, which has none: still held until segment 2 is complete.
  const addPart = (sequence: number, index: number) =>
    playlist.addPart({
      epoch: 1,
      sequence,
      index,
      number: 10 + (sequence - 2) * 5 + index,
      duration: PART,
      independent: index === 0,
    });
  for (let i = 0; i < 5; i++) assert.equal(addPart(2, i), 'accepted');
  assert.equal(playlist.partsInSync, true);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled, false, 'held until the first segment with parts is complete');
  assert.equal(addPart(3, 0), 'accepted');
  const answer = await held;
  assert.equal(answer.status, 200);
  const r = checkLlRules(answer.body);
  assert.deepEqual(
    r.entries.slice(-2).map((e) => e.parts.map((p) => p.uri.replace('1/360p/', ''))),
    [['part_10.m4s', 'part_11.m4s', 'part_12.m4s', 'part_13.m4s', 'part_14.m4s'], ['part_15.m4s']],
  );
  assert.deepEqual(r.hints, ['1/360p/part_16.m4s']);
  // No part within the hold (a stalled stream): the segments, without parts or hint, rather than an error.
  stream.stopFollowingParts();
  stream.followParts();
  const late = await playlistResponse(stream, '360p', q(''), 100);
  assert.equal(late.status, 200);
  const segmentsOnly = checkLlRules(late.body);
  assert.deepEqual(segmentsOnly.hints, []);
  assert.deepEqual(
    segmentsOnly.entries.map((e) => e.uri),
    ['1/360p/seg_0.m4s', '1/360p/seg_1.m4s', '1/360p/seg_2.m4s'],
  );
  // Parts that never come (every fetch failing): after 3 target durations of resync, requests are no
  // longer held for them at all.
  let clock = 0;
  const stalled = new LlStream({ partTarget: PART, targetDuration: TD, now: () => clock });
  const quiet = stalled.rendition('360p');
  new Feeder(quiet).parts(6);
  stalled.stopFollowingParts();
  stalled.followParts();
  assert.equal(quiet.awaitingParts, true);
  clock = 2999;
  assert.equal(quiet.awaitingParts, true);
  clock = 3000;
  assert.equal(quiet.awaitingParts, false);
  const askedAt = Date.now();
  const atOnce = await playlistResponse(stalled, '360p', q(''), 60_000);
  assert.equal(atOnce.status, 200);
  assert.ok(Date.now() - askedAt < 1000, 'answered at once, not after the 60 s hold');
});
