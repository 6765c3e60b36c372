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
