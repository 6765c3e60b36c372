// The media path's contracts: the ABR ladder, segment events (LIVE_MEDIA), assignments and workers (KV),
// transcoder heartbeats and the supervisor -> worker commands.
import { z } from 'zod';
import { type SessionRef, sourceInfo, streamId } from './events.js';

/** One rung of the ABR ladder, as the transcoder encodes it. */
export const rendition = z.object({
  /** Name used in object keys and playlist names, e.g. "360p". */
  name: z.string().regex(/^[a-z0-9]+$/),
  width: z.number().int().positive().multipleOf(2),
  height: z.number().int().positive().multipleOf(2),
  fps: z.number().positive(),
  videoKbps: z.number().int().positive(),
  audioKbps: z.number().int().nonnegative(),
});
export type Rendition = z.infer<typeof rendition>;

/** A segment (or the init segment) uploaded to storage: published on live.media.<streamId>.segment. */
export const segmentEvent = z.object({
  type: z.literal('segment'),
  id: z.string(),
  streamId,
  epoch: z.number().int().positive(),
  workerId: z.string(),
  rendition,
  kind: z.enum(['init', 'media']),
  /** ffmpeg's sequence number within this epoch and rendition (0 for init). */
  sequence: z.number().int().nonnegative(),
  durationMs: z.number().nonnegative(),
  /** Storage object key. */
  key: z.string(),
  bytes: z.number().int().nonnegative(),
  /** Wall-clock time of the segment's first frame (EXT-X-PROGRAM-DATE-TIME). */
  programDateTime: z.iso.datetime({ offset: true }).nullable(),
  /** RFC 6381 codecs of the rendition, e.g. "avc1.64001f,mp4a.40.2" (from the init segment). */
  codecs: z.string(),
  /** When the worker saw the segment complete (ms since epoch). */
  completedAt: z.number().int(),
});
export type SegmentEvent = z.infer<typeof segmentEvent>;

/**
 * An LL-HLS part (one fMP4 fragment, ~200 ms) ready on its worker: published on live.part.<streamId> the
 * moment the worker's part cutter completes it. The bytes stay on the worker (`url`); a segment event follows
 * for the whole segment once it is in storage. Parts never carry media through NATS.
 */
export const partEvent = z.object({
  type: z.literal('part'),
  streamId,
  epoch: z.number().int().positive(),
  workerId: z.string(),
  rendition: rendition.shape.name,
  /** Segment sequence within this epoch and rendition (the segment event's `sequence`). */
  sequence: z.number().int().nonnegative(),
  /** Index of the part within its segment. */
  index: z.number().int().nonnegative(),
  /** Running number of the part within this epoch and rendition (names the resource, part_<n>.m4s). */
  number: z.number().int().nonnegative(),
  durationMs: z.number().positive(),
  /** Every track starts on a sync sample: EXT-X-PART INDEPENDENT=YES. */
  independent: z.boolean(),
  /** Wall-clock time of the part's first frame. */
  programDateTime: z.iso.datetime({ offset: true }),
  /** Where the origin fetches the part's bytes (the worker's part server); `initUrl` the rendition's init. */
  url: z.url(),
  initUrl: z.url(),
  bytes: z.number().int().positive(),
  /** When the cutter completed the part (ms since epoch). */
  completedAt: z.number().int(),
});
export type PartEvent = z.infer<typeof partEvent>;

/** How often an origin repeats a stream's `llWatch` while it hears the stream's parts (ms). */
export const LL_WATCH_REPEAT_MS = 1000;
/**
 * How long a worker announces a stream's parts after the last `llWatch` (ms), and after a job starts: three
 * repeats, so one or two lost messages never stop the parts of a watched stream. The job's start counts as
 * a watch because a new job (a failover, a move) is not known to the origins' repeats yet: its first parts
 * go out, and the repeats arrive within a second.
 */
export const PARTS_WANTED_MS = 3 * LL_WATCH_REPEAT_MS;

/**
 * live.ll.watch.<streamId>: an LL-HLS origin replica hears this stream's part events (an LL request for it
 * within its watch time). Workers publish part events only for streams some origin watches: almost every
 * stream is watched in plain HLS only, and each part event costs the worker and nats-server a wake-up (15 a
 * second for a 3-rendition stream).
 */
export const llWatch = z.object({
  streamId,
  originId: z.string(),
  at: z.number().int(),
});
export type LlWatch = z.infer<typeof llWatch>;

/**
 * live.health.origin.<originId>, every second: an LL-HLS origin replica and where the others reach it. Each
 * stream's LL playlists are answered by one replica (rendezvous hashing over the replicas that have been up
 * for a while), so every viewer sees one numbering of its segments whichever replica they reach.
 */
export const originHeartbeat = z.object({
  originId: z.string().regex(/^[-\w]+$/),
  /** Base URL of its HTTP origin, e.g. http://10.4.0.7:8080. */
  url: z.url({ protocol: /^https?$/ }),
  startedAt: z.number().int(),
  at: z.number().int(),
});
export type OriginHeartbeat = z.infer<typeof originHeartbeat>;

/** live-assignments: <streamId> -> who transcodes it. Written only by the supervisor, with compare-and-set. */
export const assignmentRecord = z.object({
  streamId,
  workerId: z.string(),
  /** Incremented on every (re)assignment; segments of older epochs are fenced out. */
  epoch: z.number().int().positive(),
  source: sourceInfo,
  ladder: z.array(rendition).min(1),
  assignedAt: z.iso.datetime(),
  /** `ended` keeps the record (and its epoch) so a later session of the stream continues the epochs. */
  state: z.enum(['assigned', 'ended']),
  /**
   * Set on a planned move (make-before-break): the previous worker and epoch keep running, and their
   * segments stay accepted, until this epoch's first segment; then the supervisor stops them.
   */
  handoverFrom: z.object({ workerId: z.string(), epoch: z.number().int().positive() }).nullish(),
  /**
   * The id of the lifecycle event this assignment answers (`started`, `source_resumed`), if any. JetStream
   * redelivers an event whose handler did not ack it (a supervisor leader killed between this write and its
   * ack): the next leader sees the same id here and resends this epoch instead of starting a new one.
   */
  cause: z.string().nullish(),
  /**
   * The ingest session this assignment transcodes (from its `started` or `source_resumed`; kept across
   * failovers and moves); the ingest is `source.ingestId`. Events of another session (an ingest the streamer
   * has left) do not change the assignment. Absent in records written before it was kept.
   */
  sessionId: z.string().nullish(),
});
export type AssignmentRecord = z.infer<typeof assignmentRecord>;

/** The live session an assignment serves (see isStaleSessionEvent). */
export function assignedSession(record: AssignmentRecord): SessionRef {
  return { sessionId: record.sessionId, ingestId: record.source.ingestId };
}

/** live-workers: <workerId> -> static facts; liveness comes from heartbeats, not from this record. */
export const workerRecord = z.object({
  workerId: z.string(),
  host: z.string(),
  pid: z.number().int(),
  slots: z.number().int().positive(),
  version: z.string(),
  startedAt: z.iso.datetime(),
});
export type WorkerRecord = z.infer<typeof workerRecord>;

export const workerStreamProgress = z.object({
  streamId,
  epoch: z.number().int().positive(),
  state: z.enum(['starting', 'running', 'stopping']),
  frames: z.number().int().nonnegative(),
  /** Encoded media time (ms) reported by ffmpeg. */
  mediaTimeMs: z.number().nonnegative(),
  speed: z.number().nonnegative(),
  /** When the last segment was announced (ms since epoch), null before the first. */
  lastSegmentAt: z.number().int().nullable(),
});

/** live.health.transcoder.<workerId>, about 5 per second. */
export const transcoderHeartbeat = z.object({
  workerId: z.string(),
  at: z.number().int(),
  slots: z.number().int().positive(),
  free: z.number().int().nonnegative(),
  draining: z.boolean(),
  streams: z.array(workerStreamProgress),
});
export type TranscoderHeartbeat = z.infer<typeof transcoderHeartbeat>;

/** Supervisor -> worker: transcode this stream at this epoch (request-reply, acknowledged). */
export const assignRequest = z.object({
  streamId,
  epoch: z.number().int().positive(),
  source: sourceInfo,
  ladder: z.array(rendition).min(1),
});
export const assignReply = z.object({ accepted: z.literal(true), workerId: z.string() });

/** Supervisor -> worker: stop taking new streams and report `draining` (the supervisor moves the streams). */
export const drainRequest = z.object({}).strict();
export const drainReply = z.object({ draining: z.literal(true), streams: z.array(streamId) });

/** Supervisor -> worker: stop this stream (at this epoch or any epoch). */
export const revokeRequest = z.object({ streamId, epoch: z.number().int().positive().optional() });
export const revokeReply = z.object({ stopped: z.boolean() });

/** Presets the supervisor picks the ladder from (configurable). */
export const DEFAULT_LADDER: Rendition[] = [
  { name: '1080p', width: 1920, height: 1080, fps: 60, videoKbps: 5000, audioKbps: 128 },
  { name: '720p', width: 1280, height: 720, fps: 60, videoKbps: 2800, audioKbps: 128 },
  { name: '480p', width: 854, height: 480, fps: 30, videoKbps: 1400, audioKbps: 96 },
  { name: '360p', width: 640, height: 360, fps: 30, videoKbps: 800, audioKbps: 96 },
];

const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);

/**
 * The ladder for a source: never above its height or frame rate; widths follow the source's aspect ratio.
 * A source smaller than every preset gets one rendition at its own size.
 */
export function selectLadder(
  source: { width: number; height: number; fps: number },
  presets: Rendition[] = DEFAULT_LADDER,
): Rendition[] {
  const aspect = source.width / source.height;
  const sourceFps = source.fps > 0 ? source.fps : 30;
  const fit = (preset: Rendition, height: number): Rendition => ({
    ...preset,
    height: even(height),
    width: even(height * aspect),
    fps: Math.min(preset.fps, sourceFps),
  });
  const chosen = presets.filter((p) => p.height <= source.height).map((p) => fit(p, p.height));
  if (chosen.length > 0) return chosen;
  const smallest = [...presets].sort((a, b) => a.height - b.height)[0];
  if (!smallest) throw new Error('empty ladder');
  return [{ ...fit(smallest, source.height), name: `${even(source.height)}p` }];
}
