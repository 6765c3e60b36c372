// Records stored in JetStream KV buckets.
import { z } from 'zod';
import { streamId } from './events.js';

/** stream-keys: <sha256 hex of the plain key> -> which stream it publishes. The plain key is never stored. */
export const streamKeyRecord = z.object({
  streamId,
  /** Short public id of the key (first 8 hex chars of its hash) to name it in logs and revoke it. */
  keyId: z.string(),
  label: z.string().optional(),
  createdAt: z.iso.datetime(),
});
export type StreamKeyRecord = z.infer<typeof streamKeyRecord>;

/** live-leases: <role> -> who leads it until when. Taken and renewed only with compare-and-set. */
export const leaseRecord = z.object({
  holder: z.string(),
  /** ms since epoch, by the holder's clock; others treat the lease as free after it (plus a margin). */
  expiresAt: z.number().int(),
});
export type LeaseRecord = z.infer<typeof leaseRecord>;

/**
 * live-ll-numbering: <streamId>.<rendition> -> in that rendition's LL-HLS playlist, from segment `sequence`
 * of `epoch` on, segment s has media sequence number `msn + (s - sequence)` and discontinuity sequence
 * `dsn`. Written by the stream's owner replica where its numbering starts or moves (a new epoch, a gap);
 * every replica numbers the same way from it, so the owner can change (a rolling update, a replica lost)
 * without players seeing the numbers jump.
 */
export const llNumberingRecord = z.object({
  epoch: z.number().int().positive(),
  sequence: z.number().int().nonnegative(),
  msn: z.number().int().nonnegative(),
  dsn: z.number().int().nonnegative(),
});
export type LlNumberingRecord = z.infer<typeof llNumberingRecord>;
