// Operator endpoints under live.ctl.> (request-reply). Requests and replies are JSON validated with these schemas.
import { z } from 'zod';
import { streamId } from './events.js';

export const createKeyRequest = z.object({
  streamId,
  /** Free text to recognise the key later ("OBS laptop"). */
  label: z.string().max(100).optional(),
});
export const createKeyReply = z.object({
  streamId,
  /** The plain stream key: shown once, never stored. */
  streamKey: z.string(),
  keyId: z.string(),
});

export const revokeKeyRequest = z.union([
  z.object({ streamId }).strict(),
  z.object({ streamKey: z.string().min(1) }).strict(),
  z.object({ keyId: z.string().min(1) }).strict(),
]);
export const revokeKeyReply = z.object({
  revoked: z.number().int().nonnegative(),
  /** Live publishers disconnected because their key was revoked. */
  kicked: z.number().int().nonnegative(),
});

/** Error body of a refused operator request (also sent as Nats-Service-Error headers). */
export const ctlError = z.object({ error: z.string() });

/** A transcoder worker's id, as it appears in subjects (live.health.transcoder.<workerId>). */
export const workerId = z.string().regex(/^[-\w]+$/, 'a worker id');

/** live.ctl.worker.drain: move every stream off a worker (make-before-break), then it takes no new ones. */
export const workerDrainRequest = z.object({ workerId }).strict();
export const workerDrainReply = z.object({
  workerId: z.string(),
  /** Streams being moved; follow them with `nats sub 'live.stream.*.moved'`. */
  streams: z.array(streamId),
});

/** live.ctl.stream.move: move one stream to another worker (a given one, or the least loaded). */
export const streamMoveRequest = z.object({ streamId, toWorker: workerId.optional() }).strict();
export const streamMoveReply = z.object({
  streamId,
  fromWorker: z.string(),
  toWorker: z.string(),
  epoch: z.number().int().positive(),
  handoverMs: z.number().int().nonnegative(),
  gapless: z.boolean(),
});
