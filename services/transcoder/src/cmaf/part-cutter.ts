// The CMAF part cutter: reads the byte stream of ffmpeg's mp4 muxer writing fragmented MP4 to a pipe
// (fmp4-args.ts) and turns it into an init segment, parts (one moof+mdat fragment each, with any boxes that
// precede the moof such as styp/prft) and segments (runs of parts starting at an independent part).
// - Streaming: input arrives in chunks of any size; a box is handled once all its bytes are in, and a box
//   larger than maxBoxBytes is refused as soon as its header says so (the buffer stays bounded).
// - Segments: a new segment starts at the first independent part (its first sample of every track is a
//   sync sample) at or after 90 % of segmentTargetMs of media since the segment's start. A segment's bytes are the
//   concatenation of its parts, byte for byte, so the origin can serve either.
// - Errors: malformed input throws a CmafError (and every later push throws it again): the caller stops the
//   ffmpeg that produced it. Nothing is guessed or skipped silently.
import { CmafError, parseMoof, parseMoov, readBoxHeader, type TrackInfo } from './fmp4-boxes.js';

export { CmafError } from './fmp4-boxes.js';

export interface PartCutterOptions {
  /** Media duration after which the next independent part starts a new segment (default 1000). */
  segmentTargetMs?: number;
  /** Largest box accepted (default 32 MiB: 1 s of 1080p at 20 Mbit/s is 2.5 MiB). */
  maxBoxBytes?: number;
  /** A segment longer than this means keyframes are missing: a CmafError (default 10 x segmentTargetMs). */
  maxSegmentMs?: number;
}

export interface InitEvent {
  type: 'init';
  /** ftyp + moov (and anything between them), as written. */
  bytes: Buffer;
  tracks: TrackInfo[];
}

export interface PartEvent {
  type: 'part';
  bytes: Buffer;
  /** Segment sequence number, from 0 for the first segment of this stream. */
  segment: number;
  /** Index within its segment, from 0. */
  index: number;
  /** Running number of the part in this stream, from 0 (a hint can name the next part before its segment is known). */
  number: number;
  /** Media time of the first sample of the reference track (video if any), in seconds. */
  startTime: number;
  /** Duration of the reference track's samples, in seconds. */
  duration: number;
  /** Every track starts with a sync sample: a player can start decoding here. */
  independent: boolean;
}

export interface SegmentEvent {
  type: 'segment';
  sequence: number;
  startTime: number;
  duration: number;
  partCount: number;
  /** The segment's parts, concatenated. */
  bytes: Buffer;
}

export type CutterEvent = InitEvent | PartEvent | SegmentEvent;

/** A keyframe part starts a new segment from this fraction of the segment target on. */
const SEGMENT_SLACK = 0.9;

/** Boxes allowed before the first moof's fragment (between init and media) or between fragments. */
const PREFIX_BOXES = new Set(['styp', 'sidx', 'prft', 'emsg', 'free', 'skip']);

interface OpenSegment {
  sequence: number;
  startTicks: number;
  startTime: number;
  parts: PartEvent[];
}

export class PartCutter {
  private readonly segmentTargetMs: number;
  private readonly maxBoxBytes: number;
  private readonly maxSegmentMs: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: CmafError | undefined;
  /** Boxes of the init segment so far (before moov), then undefined. */
  private init: Buffer[] | undefined = [];
  private tracks = new Map<number, TrackInfo>();
  private reference: TrackInfo | undefined;
  /** Boxes waiting for the mdat that completes their fragment (prefix boxes, then the moof). */
  private fragment: Buffer[] = [];
  private fragmentBytes = 0;
  private moof: Buffer | undefined;
  private segment: OpenSegment | undefined;
  private nextSegment = 0;
  private nextPart = 0;
  /** Fragments dropped before the first independent one (a stream must start where a decoder can). */
  droppedLeading = 0;

  constructor(options: PartCutterOptions = {}) {
    this.segmentTargetMs = options.segmentTargetMs ?? 1000;
    this.maxBoxBytes = options.maxBoxBytes ?? 32 * 1024 * 1024;
    this.maxSegmentMs = options.maxSegmentMs ?? 10 * this.segmentTargetMs;
  }

  /** Feeds bytes; returns what they completed, in order. */
  push(chunk: Uint8Array): CutterEvent[] {
    if (this.failed) throw this.failed;
    const out: CutterEvent[] = [];
    try {
      if (chunk.length > 0) {
        this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        this.buffered += chunk.length;
      }
      for (;;) {
        const header = readBoxHeader(this.peek(16));
        if (!header) break;
        if (header.size > this.maxBoxBytes) {
          throw new CmafError(
            `box '${header.type}' declares ${header.size} bytes, above the ${this.maxBoxBytes} limit`,
          );
        }
        // Order errors are refused from the header alone, before waiting for the box's bytes.
        if (this.init?.length === 0 && header.type !== 'ftyp') {
          throw new CmafError(`expected 'ftyp' first, got '${header.type}'`);
        }
        if (this.init && (header.type === 'moof' || header.type === 'mdat')) {
          throw new CmafError(`'${header.type}' before the init segment's 'moov'`);
        }
        if (this.buffered < header.size) break;
        this.onBox(header.type, header.headerSize, this.take(header.size), out);
      }
    } catch (error) {
      this.failed = error instanceof CmafError ? error : new CmafError(String(error), { cause: error });
      throw this.failed;
    }
    return out;
  }

  /** The input ended: closes the last segment; throws if the stream stopped inside a box or fragment. */
  end(): CutterEvent[] {
    if (this.failed) throw this.failed;
    const fail = (message: string) => {
      this.failed = new CmafError(message);
      throw this.failed;
    };
    if (this.buffered > 0) {
      const header = this.buffered >= 8 ? readBoxHeader(this.peek(16)) : undefined;
      fail(
        `stream ended inside a box${header ? ` '${header.type}'` : ''}: ${this.buffered} of ${header?.size ?? '?'} bytes`,
      );
    }
    if (this.moof) fail("stream ended after a 'moof' without its 'mdat'");
    if (this.init) fail('stream ended before the init segment (ftyp + moov) was complete');
    const out: CutterEvent[] = [];
    this.closeSegment(out);
    return out;
  }

  /** Up to n first buffered bytes (copies only the few header bytes when they span chunks). */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (!first) return Buffer.alloc(0);
    if (first.length >= n || this.chunks.length === 1) return first.subarray(0, n);
    return Buffer.concat(this.chunks, Math.min(n, this.buffered)).subarray(0, n);
  }

  /** Removes the first n buffered bytes (the caller checked they are there). */
  private take(n: number): Buffer {
    const whole =
      this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered);
    const box = whole.subarray(0, n);
    const rest = whole.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return box;
  }

  private onBox(type: string, headerSize: number, box: Buffer, out: CutterEvent[]): void {
    if (this.init) {
      // The init segment: ftyp first, then anything up to and including moov.
      if (this.init.length === 0 && type !== 'ftyp')
        throw new CmafError(`expected 'ftyp' first, got '${type}'`);
      if (type === 'moof' || type === 'mdat')
        throw new CmafError(`'${type}' before the init segment's 'moov'`);
      this.init.push(box);
      if (this.init.reduce((sum, b) => sum + b.length, 0) > this.maxBoxBytes) {
        throw new CmafError('init segment larger than the box limit without a moov');
      }
      if (type !== 'moov') return;
      const tracks = parseMoov(box.subarray(headerSize));
      for (const track of tracks) this.tracks.set(track.id, track);
      this.reference = tracks.find((t) => t.handler === 'vide') ?? tracks[0];
      out.push({ type: 'init', bytes: Buffer.concat(this.init), tracks });
      this.init = undefined;
      return;
    }
    if (type === 'moof') {
      if (this.moof) throw new CmafError("two 'moof' boxes without an 'mdat' between them");
      this.moof = box.subarray(headerSize);
    } else if (type === 'mdat') {
      if (!this.moof) throw new CmafError("'mdat' without a preceding 'moof'");
    } else if (type === 'mfra') {
      // ffmpeg's random access index at the very end of the file: nothing a live player needs.
      return;
    } else if (!PREFIX_BOXES.has(type) || this.moof) {
      throw new CmafError(
        `unexpected box '${type}' ${this.moof ? "between 'moof' and 'mdat'" : 'between fragments'}`,
      );
    }
    this.fragment.push(box);
    this.fragmentBytes += box.length;
    if (this.fragmentBytes > this.maxBoxBytes) throw new CmafError('fragment larger than the box limit');
    if (type === 'mdat') this.onFragment(out);
  }

  private onFragment(out: CutterEvent[]): void {
    const trafs = parseMoof(this.moof as Buffer, this.tracks);
    const bytes = Buffer.concat(this.fragment, this.fragmentBytes);
    this.fragment = [];
    this.fragmentBytes = 0;
    this.moof = undefined;
    const reference = this.reference as TrackInfo;
    // Timing comes from the reference track (video); an audio-only fragment of an A/V stream is timed by
    // its own first track and can never start a segment.
    const timed = trafs.find((t) => t.trackId === reference.id);
    const ref = timed ?? (trafs[0] as (typeof trafs)[0]);
    const timescale = (this.tracks.get(ref.trackId) as TrackInfo).timescale;
    const independent = timed !== undefined && trafs.every((t) => t.firstIsSync);
    if (!this.segment) {
      if (!independent) {
        this.droppedLeading++;
        return;
      }
      this.openSegment(ref.decodeTime, timescale);
    } else {
      const elapsedMs = ((ref.decodeTime - this.segment.startTicks) * 1000) / timescale;
      // 10 % of slack: ffmpeg forces each keyframe by its encoder clock, which drifts a few ms per segment
      // from the fMP4 decode times (measured: 30 frames = 1.0028 s), so a keyframe "at 1 s" can sit at
      // 997 ms of this segment. Without the slack that boundary was missed and a 2 s segment made (which
      // doubled TARGETDURATION and plain HLS players' latency).
      if (independent && elapsedMs >= this.segmentTargetMs * SEGMENT_SLACK) {
        this.closeSegment(out);
        this.openSegment(ref.decodeTime, timescale);
      } else if (elapsedMs > this.maxSegmentMs) {
        throw new CmafError(`no independent fragment for ${Math.round(elapsedMs)} ms: keyframes are missing`);
      }
    }
    const segment = this.segment as OpenSegment;
    const part: PartEvent = {
      type: 'part',
      bytes,
      segment: segment.sequence,
      index: segment.parts.length,
      number: this.nextPart++,
      startTime: ref.decodeTime / timescale,
      duration: ref.duration / timescale,
      independent,
    };
    segment.parts.push(part);
    out.push(part);
  }

  private openSegment(startTicks: number, timescale: number): void {
    this.segment = { sequence: this.nextSegment++, startTicks, startTime: startTicks / timescale, parts: [] };
  }

  private closeSegment(out: CutterEvent[]): void {
    const segment = this.segment;
    if (!segment) return;
    this.segment = undefined;
    out.push({
      type: 'segment',
      sequence: segment.sequence,
      startTime: segment.startTime,
      duration: segment.parts.reduce((sum, p) => sum + p.duration, 0),
      partCount: segment.parts.length,
      bytes: Buffer.concat(segment.parts.map((p) => p.bytes)),
    });
  }
}

/** Cuts a byte stream (a child's stdout, any async iterable of chunks) into init, part and segment events. */
export async function* cutParts(
  source: AsyncIterable<Uint8Array>,
  options: PartCutterOptions = {},
): AsyncGenerator<CutterEvent> {
  const cutter = new PartCutter(options);
  for await (const chunk of source) yield* cutter.push(chunk);
  yield* cutter.end();
}
