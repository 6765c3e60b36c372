// Transcoder worker configuration: one variable per line, defaults here and nowhere else.
import { hostname } from 'node:os';
import { env } from '@live/config';
import { storageConfigSchema } from '@live/storage';
import { z } from 'zod';

export const transcoderConfigSchema = z.object({
  NATS_URL: env.natsServers(),
  /** This service's NATS user and password (set from a Secret in Kubernetes; none locally). */
  NATS_USER: env.optional(),
  NATS_PASSWORD: env.optional(),
  LOG_LEVEL: env.logLevel(),
  NATS_REPLICAS: env.int(1, 1),
  /** Unique worker id (subject token); default host-pid. */
  TRANSCODER_WORKER_ID: z
    .string()
    .regex(/^[-\w]+$/)
    .default(`${hostname()}-${process.pid}`.replace(/[^-\w]/g, '-')),
  /** Streams this worker transcodes at once. A 360p+ ladder costs most of a core; size to the machine. */
  TRANSCODER_SLOTS: env.int(1, 1),
  /** Port of /healthz, /readyz, /metrics. */
  TRANSCODER_OPS_PORT: env.port(9102),
  /** Scratch folder where ffmpeg writes segments before upload. */
  TRANSCODER_WORK_DIR: z.string().default('.data/transcode'),
  /** Target segment duration (s); keyframes are forced at every boundary. */
  TRANSCODER_SEGMENT_SECONDS: z.coerce.number().positive().max(10).default(1),
  /** x264 preset. */
  TRANSCODER_PRESET: z
    .enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'])
    .default('veryfast'),
  /** Heartbeat period (about 5 per second). */
  TRANSCODER_HEARTBEAT_MS: env.ms(200),
  /** Cut off from NATS this long, the worker stops its ffmpeg (self-fencing: its streams have moved). */
  TRANSCODER_FENCE_MS: env.ms(1500),
  /**
   * On SIGTERM the worker drains: it reports `draining`, the supervisor moves each stream (make-before-break)
   * and stops the old job after its successor's first segment. Whatever is still running after this long is
   * stopped anyway. Keep it below the pod's terminationGracePeriodSeconds (40 s in deploy/; a test checks).
   */
  TRANSCODER_DRAIN_TIMEOUT_MS: env.ms(20_000),
  /** A job whose stream is being moved keeps running at most this long if the supervisor never stops it. */
  TRANSCODER_HANDOVER_MAX_MS: env.ms(10_000),
  ...storageConfigSchema,
});
export type TranscoderConfig = z.infer<typeof transcoderConfigSchema>;
