// Source health published by ingest on live.health.ingest.<streamId>, about 5 times a second (core NATS).
import { z } from 'zod';
import { streamId } from './events.js';

export const ingestHealth = z.object({
  streamId,
  sessionId: z.string(),
  ingestId: z.string(),
  at: z.number().int(),
  /** Bytes received from the publisher per second, over the last second. */
  bytesPerSec: z.number().nonnegative(),
  /** Video frames received per second, over the last second. */
  fps: z.number().nonnegative(),
  /** Media time between the last two keyframes (ms), null until two were seen. */
  keyframeIntervalMs: z.number().nonnegative().nullable(),
  /** Milliseconds since the publisher last sent a byte. */
  silentForMs: z.number().int().nonnegative(),
  state: z.enum(['live', 'stalled', 'reconnecting']),
});
export type IngestHealth = z.infer<typeof ingestHealth>;

/** live.alert.standby (LIVE_EVENTS): the supervisor cannot keep the configured number of free worker slots. */
export const standbyAlert = z.object({
  id: z.string(),
  type: z.enum(['standby_short', 'standby_restored']),
  at: z.iso.datetime(),
  /** Free slots on live, non-draining workers. */
  freeSlots: z.number().int().nonnegative(),
  /** SUPERVISOR_STANDBY_SLOTS. */
  required: z.number().int().nonnegative(),
  workers: z.number().int().nonnegative(),
});
export type StandbyAlert = z.infer<typeof standbyAlert>;

/**
 * live.alert.placement.<streamId> (LIVE_EVENTS): a new stream (or a reconnected source) waits for a
 * transcoder worker with a free slot (`stream_waiting`, when it starts waiting), got one (`stream_placed`), or
 * ended before it got one (`stream_ended`). One subject per stream, so the last message of each subject says
 * whether that stream waits now (what a page that starts later reads back).
 */
export const placementAlert = z.object({
  id: z.string(),
  type: z.enum(['stream_waiting', 'stream_placed', 'stream_ended']),
  streamId,
  at: z.iso.datetime(),
  /** When the stream started waiting (its `started` or `source_resumed`). */
  waitingSince: z.iso.datetime(),
  /** How long it had waited when this was said (0 for stream_waiting). */
  waitingMs: z.number().int().nonnegative(),
  /** The worker that took it (stream_placed), else null. */
  workerId: z.string().nullable(),
  /** Streams still waiting once this one is counted in (stream_waiting) or out (the others). */
  waiting: z.number().int().nonnegative(),
});
export type PlacementAlert = z.infer<typeof placementAlert>;
