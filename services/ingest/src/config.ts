// Ingest configuration: one variable per line, defaults here and nowhere else.
import { env } from '@live/config';
import { z } from 'zod';

export const ingestConfigSchema = z.object({
  /** Comma-separated NATS URLs. */
  NATS_URL: env.natsServers(),
  /** This service's NATS user and password (set from a Secret in Kubernetes; none locally). */
  NATS_USER: env.optional(),
  NATS_PASSWORD: env.optional(),
  LOG_LEVEL: env.logLevel(),
  /** Address the RTMP listener binds. */
  INGEST_BIND: z.string().default('0.0.0.0'),
  /** RTMP port for streamers (OBS: rtmp://HOST:1935/live + stream key). */
  INGEST_RTMP_PORT: env.port(1935),
  /** RTMP application streamers publish to. */
  INGEST_RTMP_APP: z
    .string()
    .regex(/^[a-zA-Z0-9_-]+$/)
    .default('live'),
  /** Host transcoders use to pull sources from this instance (the pod IP on GKE). */
  INGEST_ADVERTISE_HOST: z.string().default('127.0.0.1'),
  /** Port of /healthz, /readyz, /metrics. */
  INGEST_OPS_PORT: env.port(9101),
  /** A publisher silent this long is reported source_stalled (the issue asks for < 1 s end to end). */
  INGEST_SOURCE_STALL_MS: env.ms(600),
  /** Source health publishing period (about 5 per second). */
  INGEST_HEALTH_INTERVAL_MS: env.ms(200),
  /**
   * A publisher's connection is read at most once per this interval (0: as bytes arrive). An encoder writes
   * each frame on its own, ~75 times a second; each read wakes this process and every transcoder pulling the
   * stream. 50 ms: 20 reads a second (ingest CPU -30 %, the pulling ffmpeg's -1.5 %, bench:services-ab) for
   * at most 50 ms more latency, a quarter of an LL-HLS part.
   */
  INGEST_READ_INTERVAL_MS: env.int(50, 0).pipe(z.number().max(200, 'at most 200 ms (an LL-HLS part)')),
  /** A streamer whose connection drops and comes back within this continues the same stream. */
  INGEST_RECONNECT_GRACE_MS: env.ms(10_000),
  /** A connection that has not published or played within this is closed (clients that say nothing). */
  INGEST_HANDSHAKE_TIMEOUT_MS: env.ms(10_000),
  /** A publisher whose first H.264 keyframe has not arrived within this is refused. */
  INGEST_START_TIMEOUT_MS: env.ms(5_000),
  /** Largest RTMP message accepted (a 1080p keyframe at a high bitrate is well under 2 MiB). */
  INGEST_MAX_MESSAGE_BYTES: env.int(8 * 1024 * 1024, 1024),
  /** Largest metadata or command message accepted. */
  INGEST_MAX_METADATA_BYTES: env.int(64 * 1024, 1024),
  /** JetStream replicas for streams and buckets this service provisions (3 on a production cluster). */
  NATS_REPLICAS: env.int(1, 1),
});

export type IngestConfig = z.infer<typeof ingestConfigSchema>;
