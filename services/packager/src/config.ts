// Packager configuration: one variable per line, defaults here and nowhere else.
import { hostname } from 'node:os';
import { env } from '@live/config';
import { storageConfigSchema } from '@live/storage';
import { z } from 'zod';

export const packagerConfigSchema = z.object({
  NATS_URL: env.natsServers(),
  /** This service's NATS user and password (set from a Secret in Kubernetes; none locally). */
  NATS_USER: env.optional(),
  NATS_PASSWORD: env.optional(),
  LOG_LEVEL: env.logLevel(),
  NATS_REPLICAS: env.int(1, 1),
  PACKAGER_OPS_PORT: env.port(9103),
  /** The local HTTP origin (HLS under /hls/<streamId>/; the web service proxies it locally). */
  PACKAGER_HTTP_PORT: env.port(8080),
  PACKAGER_HTTP_BIND: z.string().default('0.0.0.0'),
  /**
   * Segments in each live media playlist (the live window). Longer than the longest time playlists can stand
   * still while segments keep coming (a NATS node lost: its streams' leader elections, docs/architecture.md),
   * so that every segment is listed once they move again. Players start 3 target durations from the end
   * whatever the window, so it costs only playlist bytes.
   */
  PACKAGER_WINDOW_SEGMENTS: env.int(12, 3),
  /** Media that left the window is deleted this long after (players may still be fetching it). */
  PACKAGER_DELETE_GRACE_MS: env.ms(30_000),
  /** After `ended`, the playlist gets ENDLIST once no segment arrived for this long (ffmpeg's last ones). */
  PACKAGER_END_SETTLE_MS: env.ms(1500),
  /**
   * Leader lease of the packager role: one replica writes playlists; a dead one is replaced within this. Its
   * playlists stand still meanwhile, so it is as short as the supervisor's (renewed every half second).
   */
  PACKAGER_LEASE_MS: env.ms(1500),
  /** LL-HLS (/ll/<streamId>/): the transcoder's part duration (TRANSCODER_PART_MS), for PART-TARGET. */
  PACKAGER_LL_PART_MS: z.coerce.number().int().min(50).max(1000).default(200),
  /**
   * LL-HLS PART-HOLD-BACK: players stay this far behind the newest part. It is their buffer when parts stop
   * coming for a moment (a failover: about 1 s from the kill to the standby's first part, measured by
   * bench:llhls), so below that a failover stalls the picture; above it, viewers are that much further
   * behind. At least 3 x the part duration (rfc8216bis recommends 3x).
   */
  PACKAGER_LL_PART_HOLD_BACK_MS: z.coerce.number().int().min(150).max(10_000).default(1000),
  /** LL-HLS EXT-X-TARGETDURATION: the transcoder's segment duration (TRANSCODER_SEGMENT_SECONDS), whole seconds. */
  PACKAGER_LL_TARGET_SECONDS: env.int(1, 1),
  /** LL-HLS parts stay in the origin's memory this long (the 12-segment playlist window and a margin). */
  PACKAGER_LL_KEEP_MS: env.ms(20_000),
  /** A part fetch from its worker gives up after this long; the part is then not listed. */
  PACKAGER_LL_FETCH_TIMEOUT_MS: env.ms(1000),
  /**
   * A stream's part events are heard (and its parts fetched ahead, listed once in memory) only while it is
   * watched: an LL request for it reached this replica within this long. So an origin spends nothing per
   * part on streams nobody watches in LL; the first request of an unwatched stream waits up to about two
   * segments for parts to be listed again from a segment start.
   */
  PACKAGER_LL_WATCH_MS: env.ms(30_000),
  /**
   * The address the other replicas reach this one's HTTP origin at, on PACKAGER_HTTP_PORT (each stream's
   * LL playlists are answered by one replica; the others forward to it). On GKE the pod IP.
   */
  PACKAGER_LL_ORIGIN_HOST: z.string().min(1).default('127.0.0.1'),
  /** This replica's id among the origins (a subject token); default host-pid. */
  PACKAGER_ORIGIN_ID: z
    .string()
    .regex(/^[-\w]+$/)
    .default(`${hostname()}-${process.pid}`.replace(/[^-\w]/g, '-')),
  /** A replica answers LL playlists only after it has been up this long (it has a full playlist window). */
  PACKAGER_LL_WARM_MS: env.ms(15_000),
  ...storageConfigSchema,
});
export type PackagerConfig = z.infer<typeof packagerConfigSchema>;
