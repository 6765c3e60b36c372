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
  /** Scratch folder for ffmpeg's output sockets (one per rendition; keep the path short: 100 bytes). */
  TRANSCODER_WORK_DIR: z.string().default('.data/transcode'),
  /** Target segment duration (s); keyframes are forced at every boundary. */
  TRANSCODER_SEGMENT_SECONDS: z.coerce.number().positive().max(10).default(1),
  /** LL-HLS part duration target (ms): ffmpeg writes one fMP4 fragment per part. */
  TRANSCODER_PART_MS: z.coerce.number().int().min(50).max(1000).default(200),
  /**
   * The part server (the origin fetches LL-HLS parts here): the address the origin reaches this worker at
   * (the pod IP on GKE), the address to bind and the port (0: any free port, for several local workers).
   */
  TRANSCODER_PARTS_HOST: z.string().min(1).default('127.0.0.1'),
  TRANSCODER_PARTS_BIND: z.string().min(1).default('127.0.0.1'),
  TRANSCODER_PARTS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /** How long a part stays fetchable: the origin fetches it within milliseconds of its announcement. */
  TRANSCODER_PARTS_KEEP_MS: env.ms(10_000),
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
