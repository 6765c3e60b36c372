// The LL-HLS media playlist of one rendition, in memory: fed with part and segment metadata (from the
// transcoder's part cutter, later over NATS), rendered with hls-parser. Rules from rfc8216bis
// (draft-pantos-hls-rfc8216bis, section numbers below):
// - EXT-X-SERVER-CONTROL: CAN-BLOCK-RELOAD=YES, PART-HOLD-BACK = partHoldBack (at least 3 x PART-TARGET:
//   4.4.3.8 asks >= 2x and recommends 3x; the origin uses 1 s, see ll-origin.ts), CAN-SKIP-UNTIL = 6 x TARGETDURATION (the minimum, 4.4.3.8), HOLD-BACK = 3 x TARGETDURATION.
// - Parts: EXT-X-PART (INDEPENDENT=YES where every track starts on a sync sample) only for segments less than
//   3 target durations from the end of the playlist (6.2.2), and only in the last 3 segment entries, the
//   open one included: hls-parser's validator counts segments rather than seconds, and a short segment at an
//   epoch change would otherwise fail it; a client only needs the parts near the live edge (PART-HOLD-BACK).
// - EXT-X-PRELOAD-HINT names the next part. Parts are named by their running number within the epoch
//   (part_<n>.m4s), not by (segment, index): whether the next part starts a new segment is known only once
//   it exists, its number is known now, so the hint is always right (6.2.6: a hinted resource must exist).
// - Epochs: a part or segment of an older epoch is fenced (a zombie worker); a newer epoch ends the open
//   segment with the parts it has (marked `truncated`: the origin serves it as its parts concatenated, since
//   the old worker never wrote it) and starts the next after EXT-X-DISCONTINUITY with its own EXT-X-MAP.
// - Media sequence numbers are monotonic across epochs; EXT-X-DISCONTINUITY-SEQUENCE counts the
//   discontinuities that left the window (6.2.2). A playlist numbers its segments one after the other, and
//   follows a shared numbering where it has one (align(): the stream's owner replica writes where its
//   numbering starts or moves, every other replica renumbers to match), so replicas that heard different
//   things (one started later, one was not following parts at a failover) still number alike.
// - Following parts: an origin hears a stream's part events only while someone watches it in LL
//   (ll-origin.ts), segment events always. stopFollowingParts(): the open segment is dropped (no player saw
//   it: parts stop being followed PACKAGER_LL_WATCH_MS after the last LL request, and it is younger; its
//   event lists it), segments come from their events, and there is no preload hint (the next part's number
//   is unknown). followParts(): parts are queued until one starts the segment right after the last complete
//   one (a part starting segment s may come before or after the event completing s - 1), then listed from
//   there, so the playlist never skips a segment and never lists a segment's parts but some. A part lost
//   while following (its fetch failed) resyncs the same way: its segment is then listed without parts.
// - A missing segment event (its upload failed) with no parts to close the segment: the next segment is
//   listed after EXT-X-DISCONTINUITY (its media does not follow the previous one's) rather than stopping.
// hls-parser 0.16 writes every LL-HLS tag used here; the one gap is EXT-X-SKIP's RECENTLY-REMOVED-DATERANGES
// attribute (for _HLS_skip=v2), added to its line after stringify (see render()).
import { stringify, types } from 'hls-parser';
import type { MediaPlaylist } from 'hls-parser/types.js';

/** Where the resources of a rendition live, relative to the playlist. */
export interface UriScheme {
  init(epoch: number): string;
  part(epoch: number, partNumber: number): string;
  segment(epoch: number, sequence: number): string;
}

/** Same layout as plain HLS storage: `<epoch>/<rendition>/...` beside `<rendition>.m3u8`. */
export const defaultUris = (rendition: string): UriScheme => ({
  init: (epoch) => `${epoch}/${rendition}/init.mp4`,
  part: (epoch, n) => `${epoch}/${rendition}/part_${n}.m4s`,
  segment: (epoch, sequence) => `${epoch}/${rendition}/seg_${sequence}.m4s`,
});

/** Shared numbering: in this rendition, segment `sequence` of `epoch` has media sequence `msn`, discontinuity sequence `dsn`. */
export interface Numbering {
  epoch: number;
  sequence: number;
  msn: number;
  dsn: number;
}

/** Whether two numberings say the same of their epoch's segments: the same msn for each sequence, the same dsn. */
export const sameNumbering = (a: Numbering, b: Numbering): boolean =>
  a.epoch === b.epoch && a.msn - a.sequence === b.msn - b.sequence && a.dsn === b.dsn;

/** A segment's own numbering. */
const numberingOf = (s: LlSegment): Numbering => ({
  epoch: s.epoch,
  sequence: s.sequence,
  msn: s.msn,
  dsn: s.dsn,
});

export interface LlPlaylistOptions {
  rendition: string;
  /** The shared numbering (the stream's owner replica's): where a rendition's numbering starts, and where it moves. */
  numbering?: {
    /** The rendition's shared numbering known now (absent: none yet). */
    get(rendition: string): Numbering | undefined;
    /** Whether this replica owns the stream (its numbering is the one shared). */
    owns(): boolean;
    /**
     * A segment was started with this numbering (after aligning to the shared one, see startSegment): the
     * owner shares it where it moved, and aligns to what it shares.
     */
    segmentStarted(rendition: string, numbering: Numbering): void;
  };
  /** PART-TARGET in seconds (the cutter's part duration, e.g. 0.2). */
  partTarget: number;
  /** EXT-X-TARGETDURATION, whole seconds; must not change during the stream (6.2.1). */
  targetDuration: number;
  /** The clock (ms), for tests. */
  now?: () => number;
  /** Complete segments kept in the playlist (default 12, enough for delta updates to skip something). */
  windowSegments?: number;
  /** PART-HOLD-BACK in seconds: how far behind the live edge players stay (default and minimum 3 x partTarget). */
  partHoldBack?: number;
  /** CAN-SKIP-UNTIL in seconds (default and minimum: 6 x targetDuration). */
  skipUntil?: number;
  uris?: UriScheme;
}

export interface PartInput {
  epoch: number;
  /** Segment sequence within the epoch (the cutter's `segment`). */
  sequence: number;
  /** Index within that segment. */
  index: number;
  /** Running part number within the epoch (names the resource). */
  number: number;
  /** Seconds. */
  duration: number;
  independent: boolean;
  /** Wall-clock time of the part's first frame: becomes the segment's EXT-X-PROGRAM-DATE-TIME at index 0. */
  programDateTime?: Date;
}

export interface SegmentInput {
  epoch: number;
  sequence: number;
  /** Seconds; the sum of its parts when absent. */
  duration?: number;
  programDateTime?: Date;
}

export type AcceptResult =
  | 'accepted'
  | 'duplicate'
  | 'fenced'
  | 'out-of-order'
  | 'ended'
  | 'queued'
  | 'unfollowed';

export interface LlPart {
  index: number;
  number: number;
  uri: string;
  duration: number;
  independent: boolean;
}

export interface LlSegment {
  msn: number;
  /** Discontinuity sequence number. */
  dsn: number;
  discontinuity: boolean;
  epoch: number;
  sequence: number;
  uri: string;
  mapUri: string;
  parts: LlPart[];
  /** Seconds: the announced duration once complete, else the sum of the parts so far. */
  duration: number;
  programDateTime?: Date;
  /** Closed by an epoch change before its worker finished it: serve it as its parts concatenated. */
  truncated: boolean;
  /** Its parts are not all known (one was lost): listed as a segment only. */
  partsIncomplete: boolean;
}

/** Where a playlist ends: the newest part (or, for a segment without parts, the segment). */
export interface Position {
  msn: number;
  /** Index of the newest part of `msn`; Infinity for a complete segment announced without parts. */
  part: number;
}

export interface RenderOptions {
  /** _HLS_skip: a delta update (6.2.5.1). Ignored once the playlist has ENDLIST. */
  skip?: 'YES' | 'v2';
  /** EXT-X-RENDITION-REPORT lines for the other renditions. */
  reports?: { uri: string; lastMsn: number; lastPart?: number }[];
}

/** Seconds as hls-parser writes them: rounded to the millisecond (no 0.6000000000000001). */
const ms = (seconds: number) => Math.round(seconds * 1000) / 1000;

export class LlRenditionPlaylist {
  readonly rendition: string;
  readonly partTarget: number;
  readonly targetDuration: number;
  readonly skipUntil: number;
  readonly partHoldBack: number;
  private readonly windowSegments: number;
  private readonly uris: UriScheme;
  /** Complete segments in the window, oldest first. */
  readonly segments: LlSegment[] = [];
  /** The segment being built from parts. */
  open: LlSegment | undefined;
  epoch = -1;
  ended = false;
  private nextMsn = 0;
  private dsn = 0;
  /** The next segment follows an epoch change. */
  private discontinuityPending = false;
  /** Newest (sequence, part number) of the current epoch: what comes next is checked against it. */
  private lastSequence = -1;
  private lastNumber = -1;
  /** following: parts are listed as they come; resyncing: queued until one starts the next segment; off: ignored. */
  private partsMode: 'following' | 'resyncing' | 'off' = 'following';
  /** Parts heard while resyncing, in arrival order (at most a segment or two). */
  private pending: PartInput[] = [];
  /** The first segment listed with its parts after a resync, until it is complete (see awaitingParts). */
  private resyncedMsn: number | undefined;
  /** When the last resync started (ms). */
  private resyncStartedAt = 0;
  private readonly now: () => number;
  private readonly listeners = new Set<() => void>();
  /** The shared numbering of the newest epoch it was given for (applied by applyAnchor()). */
  private anchor: Numbering | undefined;
  private readonly numberingHooks: LlPlaylistOptions['numbering'];

  constructor(options: LlPlaylistOptions) {
    this.rendition = options.rendition;
    this.partTarget = options.partTarget;
    this.targetDuration = options.targetDuration;
    if (!Number.isInteger(this.targetDuration) || this.targetDuration < 1) {
      throw new Error(`targetDuration must be a whole number of seconds, got ${this.targetDuration}`);
    }
    if (!(this.partTarget > 0 && this.partTarget <= this.targetDuration)) {
      throw new Error(`partTarget must be in (0, targetDuration], got ${this.partTarget}`);
    }
    this.skipUntil = Math.max(options.skipUntil ?? 0, 6 * this.targetDuration);
    this.partHoldBack = Math.max(options.partHoldBack ?? 0, 3 * this.partTarget);
    this.windowSegments = options.windowSegments ?? 12;
    this.now = options.now ?? Date.now;
    this.uris = options.uris ?? defaultUris(options.rendition);
    this.numberingHooks = options.numbering;
    this.anchor = options.numbering?.get(options.rendition);
  }

  /**
   * The shared numbering: from segment `sequence` of `epoch` on, segment s is `msn + (s - sequence)` with
   * discontinuity sequence `dsn`. This epoch's segments are renumbered to match (now, or once such a segment
   * is here); one of an older epoch than the last one given changes nothing (a late message).
   */
  align(numbering: Numbering): void {
    if (this.anchor && numbering.epoch < this.anchor.epoch) return;
    this.anchor = numbering;
    if (this.applyAnchor()) this.changed();
  }

  /** The newest segment's numbering (the open one, else the last complete one); undefined before any. */
  numbering(): Numbering | undefined {
    const s = this.newest();
    return s && numberingOf(s);
  }

  /** The open segment, else the last complete one; undefined before any. */
  private newest(): LlSegment | undefined {
    return this.open ?? this.segments.at(-1);
  }

  /** The shared numbering if it speaks of `s` (its epoch, not before its segment). */
  private anchorOf(s: LlSegment): Numbering | undefined {
    const a = this.anchor;
    return a && s.epoch === a.epoch && s.sequence >= a.sequence ? a : undefined;
  }

  /** Whether the newest segment is numbered as the shared numbering says (or it says nothing about it). */
  private followsAnchor(): boolean {
    const newest = this.newest();
    const a = newest && this.anchorOf(newest);
    return !a || !newest || sameNumbering(a, numberingOf(newest));
  }

  /**
   * Renumbers to the shared numbering, if it is of the newest segment's epoch and not ahead of it: the
   * newest segment takes its number from it, the others of the epoch move with it. The window must go one
   * number after the other, so what does not (segments before a gap only this replica has; if numbers
   * moved, those before the shared numbering's segment and of older epochs, numbered who knows how
   * elsewhere) leaves it. True if anything changed.
   */
  private applyAnchor(): boolean {
    const newest = this.newest();
    const a = newest && this.anchorOf(newest);
    if (!a || !newest) return false;
    const msnShift = a.msn + (newest.sequence - a.sequence) - newest.msn;
    const dsnShift = a.dsn - newest.dsn;
    const moved = msnShift !== 0 || dsnShift !== 0;
    const all = this.open ? [...this.segments, this.open] : [...this.segments];
    if (moved) {
      for (const s of all) {
        if (s.epoch !== a.epoch) continue;
        s.msn += msnShift;
        s.dsn += dsnShift;
      }
      this.nextMsn += msnShift;
      this.dsn += dsnShift;
      if (this.resyncedMsn !== undefined) this.resyncedMsn += msnShift;
    }
    let first = all.length - 1;
    for (; first > 0; first--) {
      const [before, after] = [all[first - 1] as LlSegment, all[first] as LlSegment];
      const follows = this.anchorOf(before) ? sameNumbering(a, numberingOf(before)) : !moved;
      if (!follows || before.msn !== after.msn - 1) break;
    }
    if (first > 0) {
      this.segments.splice(0, first);
      // Now the first of the window: its discontinuity means nothing to a player (render() leaves it out),
      // and undoing it (stopFollowingParts) must not take the discontinuity sequence below the shared one.
      (all[first] as LlSegment).discontinuity = false;
    }
    return moved || first > 0;
  }

  /** Called after every change (blocking reloads re-check their condition). Returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The assignment moved to `epoch`: older epochs are fenced from now on, the open segment ends here. */
  raiseEpoch(epoch: number): void {
    if (epoch <= this.epoch) return;
    this.switchEpoch(epoch);
    this.changed();
  }

  /** Parts are listed as they come again, from the next segment that can be listed whole. */
  followParts(): void {
    if (this.partsMode !== 'off') return;
    this.partsMode = 'resyncing';
    this.resyncStartedAt = this.now();
  }

  /** Parts are not heard any more: the open segment is dropped (its event lists it), no preload hint. */
  stopFollowingParts(): void {
    if (this.partsMode === 'off') return;
    this.partsMode = 'off';
    this.pending = [];
    this.resyncedMsn = undefined;
    const open = this.open;
    if (open) {
      this.open = undefined;
      this.nextMsn = open.msn;
      this.lastSequence = open.sequence - 1;
      if (open.discontinuity) {
        this.dsn--;
        this.discontinuityPending = true;
      }
    }
    this.changed();
  }

  /** True while parts are listed as they come (so the preload hint names the real next part). */
  get partsInSync(): boolean {
    return this.partsMode === 'following';
  }

  /**
   * A resync is under way: parts are not in sync yet, or the first segment listed with its parts after it
   * is not complete. A player joining then would not find parts back to PART-HOLD-BACK (a segment) from the
   * live edge: with only the open segment's first part listed, hls.js started a second further back, in a
   * segment without parts, and stalled once at start (bench:llhls), which then raised its target latency
   * for the session. False after 3 target durations all the same (parts that do not come, e.g. every fetch
   * failing, must not hold every request).
   */
  get awaitingParts(): boolean {
    if (this.ended || this.partsMode === 'off') return false;
    if (this.partsMode === 'following') {
      // In sync; awaited only until the first segment listed with its parts is complete.
      if (this.resyncedMsn === undefined || this.lastCompleteMsn() >= this.resyncedMsn) return false;
    }
    return this.now() - this.resyncStartedAt < 3 * this.targetDuration * 1000;
  }

  addPart(input: PartInput): AcceptResult {
    if (this.partsMode === 'off') return 'unfollowed';
    const gate = this.gate(input.epoch);
    if (gate) return gate;
    if (this.partsMode === 'resyncing') return this.resync(input);
    const open = this.open;
    if (open && open.epoch === input.epoch && open.sequence === input.sequence) {
      if (input.index < open.parts.length) return 'duplicate';
      if (input.index > open.parts.length || input.number !== this.lastNumber + 1) return this.lost(input);
    } else {
      if (input.sequence <= this.lastSequence) return 'duplicate';
      // A new segment: the next one, starting with its first part, independent (the cutter guarantees it).
      const expected = this.lastSequence < 0 ? input.sequence : this.lastSequence + 1;
      if (input.sequence !== expected || input.index !== 0 || !input.independent) return this.lost(input);
      if (this.lastNumber >= 0 && input.number !== this.lastNumber + 1) return this.lost(input);
      if (open) this.finish(open, undefined);
      this.startSegment(input.epoch, input.sequence, input.programDateTime);
    }
    const segment = this.open as LlSegment;
    segment.parts.push({
      index: input.index,
      number: input.number,
      uri: this.uris.part(input.epoch, input.number),
      duration: input.duration,
      independent: input.independent,
    });
    segment.duration += input.duration;
    this.lastNumber = input.number;
    this.changed();
    return 'accepted';
  }

  /** A segment is complete (its full resource exists). Parts of the next segment also complete it. */
  completeSegment(input: SegmentInput): AcceptResult {
    const gate = this.gate(input.epoch);
    if (gate) return gate;
    const open = this.open;
    if (open && open.sequence === input.sequence) {
      this.finish(open, input.duration);
    } else {
      if (input.sequence <= this.lastSequence) return 'duplicate';
      if (input.duration === undefined) return 'out-of-order';
      if (this.lastSequence >= 0 && input.sequence !== this.lastSequence + 1) {
        // A segment event is missing (its upload failed) and no parts close that segment: this one follows
        // a gap in the media, so after a discontinuity. With parts listed, their order decides instead.
        if (open && !open.partsIncomplete) return 'out-of-order';
        this.discontinuityPending = true;
      }
      // A segment announced without parts (none were cut, or they were missed): listed as a plain segment.
      // An open one whose parts were not all heard and whose own event never came ends with the parts it
      // has (served as their concatenation), and the media jumps after it.
      if (open?.partsIncomplete) {
        this.finish(open, undefined, true);
        this.discontinuityPending = true;
      } else if (open) this.finish(open, undefined);
      this.startSegment(input.epoch, input.sequence, input.programDateTime);
      this.finish(this.open as LlSegment, input.duration);
    }
    if (this.partsMode === 'resyncing') this.drainPending();
    this.changed();
    return 'accepted';
  }

  /**
   * Following, a part that is not the next one (the one before was lost: its fetch failed): its segment is
   * listed without parts from now on (its event gives it its duration), and parts are listed again from a
   * segment start, as after followParts(). Parts from before (a late one) are just out of order.
   */
  private lost(input: PartInput): AcceptResult {
    const ahead =
      input.number > this.lastNumber + 1 ||
      input.sequence > this.lastSequence + 1 ||
      (input.sequence === this.open?.sequence && input.index > this.open.parts.length);
    if (!ahead || this.lastSequence < 0) return 'out-of-order';
    if (this.open) this.open.partsIncomplete = true;
    this.partsMode = 'resyncing';
    this.resyncStartedAt = this.now();
    this.changed();
    return this.resync(input);
  }

  /** Resyncing: queues the part, and lists the queue once it starts the segment after the last complete one. */
  private resync(input: PartInput): AcceptResult {
    this.pending.push(input);
    // Bounded: a segment event that never comes must not grow the queue (10 s of 200 ms parts).
    if (this.pending.length > 50) this.pending.shift();
    return this.drainPending() ? 'accepted' : 'queued';
  }

  /** Lists the queued parts if they start the next segment (dropping those before it); true if it did. */
  private drainPending(): boolean {
    this.pending = this.pending.filter((p) => p.epoch === this.epoch && p.sequence > this.lastSequence);
    if (this.pending.length === 0) return false;
    // A fresh epoch (or playlist) starts with the first segment heard: if that one was heard from its
    // middle, its event lists it first (skipping it would leave a hole in the new epoch).
    const next =
      this.lastSequence < 0 ? Math.min(...this.pending.map((p) => p.sequence)) : this.lastSequence + 1;
    const start = this.pending.findIndex((p) => p.index === 0 && p.independent && p.sequence === next);
    // An open segment here is one whose parts were missed: only its segment event knows its duration, so
    // the next segment waits for that event (completeSegment drains again).
    if (start < 0 || this.open) return false;
    const queued = this.pending.slice(start);
    this.pending = [];
    this.partsMode = 'following';
    this.lastNumber = -1;
    // Mid-stream (segments before it were listed without parts): awaited until this segment is complete.
    if (this.lastSequence >= 0 || this.segments.length > 0) this.resyncedMsn = this.nextMsn;
    for (const part of queued) this.addPart(part);
    return true;
  }

  /** The stream ended: the open segment is closed as it is, ENDLIST is written, nothing is held any more. */
  end(): void {
    if (this.ended) return;
    if (this.open) this.finish(this.open, undefined, true);
    this.ended = true;
    this.changed();
  }

  /** The newest part or segment, undefined before the first. */
  position(): Position | undefined {
    const open = this.listedOpen();
    if (open) return { msn: open.msn, part: open.parts.length - 1 };
    const last = this.segments.at(-1);
    if (!last) return undefined;
    const listed = last.parts.length > 0 && !last.partsIncomplete;
    return { msn: last.msn, part: listed ? last.parts.length - 1 : Number.POSITIVE_INFINITY };
  }

  /** The open segment if it is listed: it has parts, all of them known. */
  private listedOpen(): LlSegment | undefined {
    const open = this.open;
    return open && open.parts.length > 0 && !open.partsIncomplete ? open : undefined;
  }

  /** Media sequence number of the newest complete segment (-1 before the first). */
  lastCompleteMsn(): number {
    return this.segments.at(-1)?.msn ?? (this.open ? this.open.msn : this.nextMsn) - 1;
  }

  /** Running number of the next part of the current epoch (the one the preload hint names). */
  nextPartNumber(): number {
    return this.lastNumber + 1;
  }

  /** URI of the part the preload hint names (the next part of the current epoch). */
  hintUri(): string {
    return this.uris.part(this.epoch, this.lastNumber + 1);
  }

  /** The media playlist, full or as a delta update. */
  render({ skip, reports = [] }: RenderOptions = {}): string {
    const open = this.listedOpen();
    const all = [...this.segments, ...(open ? [open] : [])];
    const end = all.reduce((sum, s) => sum + s.duration, 0);
    // Start of each segment, seconds from the start of the window.
    const starts: number[] = [];
    all.reduce((at, s) => {
      starts.push(at);
      return at + s.duration;
    }, 0);
    // Segment entries as hls-parser counts them: the hint-only entry after a complete segment is one too.
    // No hint while parts are not followed: the next part's number is not known.
    const hintOnly = !this.ended && this.partsInSync && !open;
    const entries = all.length + (hintOnly ? 1 : 0);
    const delta = skip !== undefined && !this.ended;
    let skipped = 0;
    // 6.2.5.1: skip the segments that lie wholly before the Skip Boundary (CAN-SKIP-UNTIL from the end).
    while (
      delta &&
      skipped < all.length &&
      (starts[skipped] ?? 0) + (all[skipped]?.duration ?? 0) <= end - this.skipUntil
    ) {
      skipped++;
    }
    const segments = all.slice(skipped).map((s, j) => {
      const i = j + skipped;
      const withParts =
        end - (starts[i] ?? 0) < 3 * this.targetDuration && i >= entries - 3 && !s.partsIncomplete;
      const parts = withParts
        ? s.parts.map(
            (p) =>
              new types.PartialSegment({
                hint: false,
                uri: p.uri,
                duration: ms(p.duration),
                independent: p.independent || undefined,
              }),
          )
        : [];
      const complete = s !== this.open || this.ended;
      if (!complete) parts.push(new types.PartialSegment({ hint: true, uri: this.hintUri() }));
      return new types.Segment({
        uri: complete ? s.uri : '',
        duration: complete ? ms(s.duration) : undefined,
        mediaSequenceNumber: s.msn,
        discontinuitySequence: s.dsn,
        // A discontinuity before the first segment of the window means nothing to a joining player.
        discontinuity: i > 0 && s.discontinuity,
        map: new types.MediaInitializationSection({ uri: s.mapUri }),
        programDateTime: s.programDateTime,
        parts,
      });
    });
    if (hintOnly) {
      // The preload hint of the next segment's first part: a segment entry with nothing but the hint.
      segments.push(
        new types.Segment({
          uri: '',
          mediaSequenceNumber: this.nextMsn,
          discontinuitySequence: this.dsn,
          parts: [new types.PartialSegment({ hint: true, uri: this.hintUri() })],
        }),
      );
    }
    const first = all[0];
    const playlist: MediaPlaylist = new types.MediaPlaylist({
      // 7 as the plain playlists; 9 where EXT-X-SKIP appears (rfc8216bis section 8). A v2 delta replaces no
      // EXT-X-DATERANGE (this playlist has none), so it does not need 10.
      version: delta && skipped > 0 ? 9 : 7,
      independentSegments: true,
      targetDuration: this.targetDuration,
      mediaSequenceBase: first?.msn ?? this.nextMsn,
      discontinuitySequenceBase: first?.dsn ?? this.dsn,
      lowLatencyCompatibility: {
        canBlockReload: true,
        canSkipUntil: this.skipUntil,
        holdBack: 3 * this.targetDuration,
        partHoldBack: ms(this.partHoldBack),
      },
      partTargetDuration: this.partTarget,
      skip: delta ? skipped : 0,
      endlist: this.ended,
      segments,
      renditionReports: reports.map(
        // hls-parser's type wants lastPart, its writer leaves LAST-PART out when undefined.
        (r) => new types.RenditionReport({ uri: r.uri, lastMSN: r.lastMsn, lastPart: r.lastPart as number }),
      ),
    });
    let text = stringify(playlist);
    if (delta && skipped > 0 && skip === 'v2') {
      // hls-parser cannot write RECENTLY-REMOVED-DATERANGES, which a v2 delta must carry (4.4.5.2); this
      // playlist never has date ranges, so the list is empty.
      text = text.replace(/^#EXT-X-SKIP:SKIPPED-SEGMENTS=\d+$/m, '$&,RECENTLY-REMOVED-DATERANGES=""');
    }
    // RFC 8216: every line ends with a line feed (hls-parser leaves the last one off).
    return `${text}\n`;
  }

  private gate(epoch: number): AcceptResult | undefined {
    if (this.ended) return 'ended';
    if (epoch < this.epoch) return 'fenced';
    if (epoch > this.epoch) this.switchEpoch(epoch);
    return undefined;
  }

  private switchEpoch(epoch: number): void {
    if (this.open) this.finish(this.open, undefined, true);
    // The first epoch of the playlist needs no discontinuity; every later one does.
    this.discontinuityPending = this.epoch >= 0 || this.segments.length > 0;
    this.epoch = epoch;
    this.lastSequence = -1;
    this.lastNumber = -1;
  }

  private startSegment(epoch: number, sequence: number, programDateTime: Date | undefined): void {
    // Whether this playlist numbered a segment of this epoch before (else its numbering starts here).
    const continues = this.segments.at(-1)?.epoch === epoch;
    const discontinuity = this.discontinuityPending && this.nextMsn > 0;
    if (discontinuity) this.dsn++;
    this.discontinuityPending = false;
    this.open = {
      msn: this.nextMsn++,
      dsn: this.dsn,
      discontinuity,
      epoch,
      sequence,
      uri: this.uris.segment(epoch, sequence),
      mapUri: this.uris.init(epoch),
      parts: [],
      duration: 0,
      programDateTime,
      truncated: false,
      partsIncomplete: false,
    };
    this.lastSequence = sequence;
    // The shared numbering: every replica takes it where its own numbering starts (a replica started or
    // restarted, a new epoch someone numbered already); the others also where theirs moved (a segment event
    // only they missed). Where the owner's moved (a gap), the owner shares its own instead.
    // (Asked only when the numbers differ: who owns the stream is a hash per replica.)
    if (!this.followsAnchor() && (!continues || !this.numberingHooks?.owns())) this.applyAnchor();
    const numbering = this.numbering();
    if (numbering) this.numberingHooks?.segmentStarted(this.rendition, numbering);
  }

  /** Moves the open segment to the complete ones and trims the window. */
  private finish(segment: LlSegment, duration: number | undefined, truncated = false): void {
    // An open segment always has a part or an announced duration: startSegment is followed by one of them.
    if (duration !== undefined) segment.duration = duration;
    segment.truncated = truncated;
    this.segments.push(segment);
    this.open = undefined;
    while (this.segments.length > this.windowSegments) this.segments.shift();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

/** The LL-HLS playlists of one stream: its renditions, each rendered with reports of all the others. */
export class LlStream {
  readonly renditions = new Map<string, LlRenditionPlaylist>();
  private followingParts = true;

  constructor(private readonly defaults: Omit<LlPlaylistOptions, 'rendition'>) {}

  rendition(name: string): LlRenditionPlaylist {
    let playlist = this.renditions.get(name);
    if (!playlist) {
      playlist = new LlRenditionPlaylist({ ...this.defaults, rendition: name });
      // Parts are listed from a segment start: a rendition heard of mid-stream resyncs (its next part's
      // number is not known); one that starts now lists its first part at once.
      playlist.stopFollowingParts();
      if (this.followingParts) playlist.followParts();
      this.renditions.set(name, playlist);
    }
    return playlist;
  }

  /** Part events are heard (again) for every rendition: see LlRenditionPlaylist.followParts. */
  followParts(): void {
    this.followingParts = true;
    for (const playlist of this.renditions.values()) playlist.followParts();
  }

  stopFollowingParts(): void {
    this.followingParts = false;
    for (const playlist of this.renditions.values()) playlist.stopFollowingParts();
  }

  /** A rendition's media playlist, with EXT-X-RENDITION-REPORT for every other rendition that has media. */
  render(name: string, skip?: 'YES' | 'v2'): string {
    const playlist = this.renditions.get(name);
    if (!playlist) throw new Error(`unknown rendition ${name}`);
    const reports = [...this.renditions.values()]
      .filter((other) => other !== playlist)
      .flatMap((other) => {
        const at = other.position();
        // LAST-PART: the newest part of LAST-MSN (left out for a segment announced without parts).
        return at
          ? [
              {
                uri: `${other.rendition}.m3u8`,
                lastMsn: at.msn,
                lastPart: Number.isFinite(at.part) ? at.part : undefined,
              },
            ]
          : [];
      });
    return playlist.render({ skip, reports });
  }
}
