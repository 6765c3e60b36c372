// Stream lifecycle events (JetStream LIVE_EVENTS, subject live.stream.<streamId>.<type>).
// A discriminated union on `type`; every event carries an `id` used as the JetStream message id (dedupe).
import { z } from 'zod';
import { STREAM_ID_PATTERN } from './subjects.js';

export const streamId = z
  .string()
  .regex(STREAM_ID_PATTERN, 'stream id must match ^[a-z0-9][a-z0-9_-]{0,63}$');

const base = {
  id: z.string().min(1).max(128),
  streamId,
  /**
   * One live session of a stream on one ingest: stays the same across reconnects and takeovers within that
   * ingest's grace period; a publish that lands on another ingest starts a new session there. `supervisor`
   * on the supervisor's own events.
   */
  sessionId: z.string().min(1).max(64),
  /**
   * The ingest instance that published the event (an ingest's events only; absent on the supervisor's and
   * the workers' events, and on events from ingests older than this field). See isStaleSessionEvent.
   */
  ingestId: z.string().min(1).max(128).optional(),
  at: z.iso.datetime(),
};

/** The sessionId of the supervisor's own events (assigned, failover, moved, ended with ingest_lost). */
export const SUPERVISOR_SESSION = 'supervisor';

/** What ingest learned about the source from RTMP metadata and the codec headers. */
export const sourceInfo = z.object({
  /** Internal RTMP URL a transcoder plays (not the streamer's key; carries a play token valid on that ingest). */
  url: z.string().startsWith('rtmp://'),
  video: z.object({
    codec: z.literal('h264'),
    profile: z.string(),
    level: z.number().nullable(),
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    /** Frames per second as announced in onMetaData (0 when the publisher did not say). */
    fps: z.number().nonnegative(),
    chromaFormat: z.number().int(),
    bitDepth: z.number().int(),
  }),
  audio: z
    .object({
      codec: z.literal('aac'),
      sampleRate: z.number().int().nonnegative(),
      channels: z.number().int().positive(),
    })
    .nullable(),
  /** Announced total bitrate in kbit/s from onMetaData, 0 if unknown. */
  announcedKbps: z.number().nonnegative(),
  /** The ingest instance holding the publisher. */
  ingestId: z.string(),
});
export type SourceInfo = z.infer<typeof sourceInfo>;

export const streamStarted = z.object({
  ...base,
  type: z.literal('started'),
  source: sourceInfo,
  /** When ingest accepted the publish command (ms since epoch, ingest's clock). */
  acceptedAt: z.number().int(),
});

export const streamEnded = z.object({
  ...base,
  type: z.literal('ended'),
  /**
   * publisher_stopped: the streamer stopped (RTMP deleteStream before hanging up), ended at once;
   * publisher_left: the connection dropped and no reconnect came within the grace period; ingest_lost: the ingest holding the stream vanished
   * (its health reports stopped) and the streamer did not come back anywhere within the grace period.
   */
  reason: z.enum(['publisher_stopped', 'publisher_left', 'key_revoked', 'rejected', 'ingest_lost']),
  durationMs: z.number().int().nonnegative(),
});

export const sourceStalled = z.object({
  ...base,
  type: z.literal('source_stalled'),
  /** How long the publisher had sent nothing when the stall was reported. */
  silentForMs: z.number().int().nonnegative(),
  /** True when the publisher's connection closed (reconnect grace running), false when it is open but silent. */
  disconnected: z.boolean(),
});

export const sourceResumed = z.object({
  ...base,
  type: z.literal('source_resumed'),
  /** data: bytes flow again; reconnect: a new publish within the grace period; takeover: a second publisher replaced the first. */
  reason: z.enum(['data', 'reconnect', 'takeover']),
  /** Present when a new publisher connection holds the stream (reconnect, takeover): transcoders must re-pull. */
  source: sourceInfo.optional(),
});

export const streamRejected = z.object({
  ...base,
  type: z.literal('rejected'),
  /** Person-readable reason, also logged; for the streamer's page. */
  reason: z.string(),
});

/** A worker's ffmpeg failed (exit, crash); the last stderr lines say why. */
export const transcodeFailed = z.object({
  ...base,
  type: z.literal('transcode_failed'),
  workerId: z.string(),
  epoch: z.number().int().positive(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  lastLines: z.array(z.string()).max(50),
});

/** The supervisor (re)assigned the stream: who transcodes it from which epoch on. */
export const streamAssigned = z.object({
  ...base,
  type: z.literal('assigned'),
  workerId: z.string(),
  epoch: z.number().int().positive(),
  renditions: z.array(z.string()),
});

/** The supervisor moved a stream off a failed or stalled worker. */
export const streamFailover = z.object({
  ...base,
  type: z.literal('failover'),
  fromWorker: z.string(),
  toWorker: z.string(),
  /** worker_lost: heartbeats stopped; stalled: encoder progress stopped while the source was healthy. */
  reason: z.enum(['worker_lost', 'stalled']),
  epoch: z.number().int().positive(),
  /** From the last sign of health (heartbeat or progress) to the decision. */
  detectionMs: z.number().int().nonnegative(),
  /** From the decision to the standby's acknowledgement of the new epoch. */
  switchMs: z.number().int().nonnegative(),
});

/** A planned, make-before-break move: the old worker stopped only after the new epoch's first segment. */
export const streamMoved = z.object({
  ...base,
  type: z.literal('moved'),
  fromWorker: z.string(),
  toWorker: z.string(),
  /** drain: the worker was draining (SIGTERM or live.ctl.worker.drain); operator: live.ctl.stream.move. */
  reason: z.enum(['drain', 'operator']),
  fromEpoch: z.number().int().positive(),
  epoch: z.number().int().positive(),
  /** From the decision to the new worker's acknowledgement. */
  switchMs: z.number().int().nonnegative(),
  /** From the decision to the new epoch's first segment announced (the old worker was stopped then). */
  handoverMs: z.number().int().nonnegative(),
  /** False when the new epoch produced no segment in time and the old worker was stopped anyway. */
  gapless: z.boolean(),
});

export const lifecycleEvent = z.discriminatedUnion('type', [
  streamStarted,
  streamEnded,
  sourceStalled,
  sourceResumed,
  streamRejected,
  transcodeFailed,
  streamAssigned,
  streamFailover,
  streamMoved,
]);
export type LifecycleEvent = z.infer<typeof lifecycleEvent>;
export type LifecycleEventOf<T extends LifecycleEvent['type']> = Extract<LifecycleEvent, { type: T }>;

/** A stream's live session: which ingest instance holds the publisher, in which session. */
export interface SessionRef {
  sessionId: string | null | undefined;
  ingestId: string | null | undefined;
}

/** The session a lifecycle event gives its stream: a `started`, or a `source_resumed` with a new source. */
export function claimedSession(event: LifecycleEvent): SessionRef | null {
  const source = event.type === 'started' || event.type === 'source_resumed' ? event.source : undefined;
  return source ? { sessionId: event.sessionId, ingestId: source.ingestId } : null;
}

/**
 * True when an ingest's event (`ended`, `source_stalled`, `source_resumed` without a source, `rejected`)
 * speaks for another session than the stream's current one. Behind a load balancer a streamer whose
 * connection dropped reconnects to any ingest, which starts a new session; the ingest they left still
 * reports on the old session (a stall, then `ended` once its reconnect grace runs out), and that must change
 * nothing. The supervisor's own events are not an ingest's; a value missing on either side (records and
 * events from before these fields were kept) cannot tell, and the event counts as current.
 */
export function isStaleSessionEvent(
  current: SessionRef | null | undefined,
  event: { sessionId: string; ingestId?: string | undefined },
): boolean {
  if (!current || event.sessionId === SUPERVISOR_SESSION) return false;
  if (event.ingestId && current.ingestId && event.ingestId !== current.ingestId) return true;
  return !!current.sessionId && current.sessionId !== event.sessionId;
}
