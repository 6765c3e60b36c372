// Supervisor configuration: one variable per line, defaults here and nowhere else.
import { env } from '@live/config';
import { DEFAULT_LADDER, rendition } from '@live/contracts';
import { z } from 'zod';

export const supervisorConfigSchema = z.object({
  NATS_URL: env.natsServers(),
  /** This service's NATS user and password (set from a Secret in Kubernetes; none locally). */
  NATS_USER: env.optional(),
  NATS_PASSWORD: env.optional(),
  LOG_LEVEL: env.logLevel(),
  NATS_REPLICAS: env.int(1, 1),
  SUPERVISOR_OPS_PORT: env.port(9104),
  /** The ladder presets as JSON (renditions above the source are dropped per stream). */
  SUPERVISOR_LADDER: z
    .string()
    .default(JSON.stringify(DEFAULT_LADDER))
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'expected a JSON array of renditions' });
        return z.NEVER;
      }
    })
    .pipe(z.array(rendition).min(1)),
  /** A worker whose heartbeats stop this long is not given new streams (heartbeats come every ~200 ms). */
  SUPERVISOR_WORKER_TIMEOUT_MS: env.ms(1000),
  /** How long a worker has to acknowledge an assignment before the next one is tried. */
  SUPERVISOR_ASSIGN_TIMEOUT_MS: env.ms(3000),
  /**
   * No heartbeat, or no encoder progress while the source is healthy, for this long: fail over. The budget for
   * detection is 600 ms; this plus the heartbeat's phase (up to 200 ms) stays inside it (the supervisor looks
   * at each stream's deadline, not on a fixed period).
   */
  SUPERVISOR_STALL_MS: env.ms(450),
  /** A new assignment gets this long to show progress (ffmpeg start-up) before it counts as stalled. */
  SUPERVISOR_START_GRACE_MS: env.ms(4000),
  /**
   * How often a stream is looked at while a message, not time, could decide a fault: its source quiet or not
   * flowing, a stall waiting for evidence, a failover to retry. Otherwise at each rule's deadline.
   */
  SUPERVISOR_CHECK_MS: env.ms(100),
  /** The warm standby pool: free worker slots to keep; fewer raise a standby_short alert and metric. */
  SUPERVISOR_STANDBY_SLOTS: env.int(1, 0),
  /** A planned move waits this long for the new epoch's first segment before stopping the old job anyway. */
  SUPERVISOR_HANDOVER_TIMEOUT_MS: env.ms(8000),
  /**
   * No ingest reported on a live stream for this long: the ingest holding it died and the streamer did not
   * reconnect anywhere, so the supervisor ends the stream. Longer than INGEST_RECONNECT_GRACE_MS (10 s).
   */
  SUPERVISOR_SOURCE_LOST_MS: env.ms(15_000),
  /** Leader lease: one replica acts; a dead leader is replaced within about this long (budget: 2 s). */
  SUPERVISOR_LEASE_MS: env.ms(1500),
});
export type SupervisorConfig = z.infer<typeof supervisorConfigSchema>;
