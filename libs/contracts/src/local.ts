// The local runner's process table (`npm start`): published by the runner on live.health.local every second
// (core NATS), shown on the ops page. On Kubernetes nobody publishes it (kubectl shows restarts there).
import { z } from 'zod';

export const localProcessStatus = z.object({
  /** Unique: the service, with the replica's number where there are several ("ingest-2"). */
  name: z.string().min(1).max(64),
  /** nats, ingest, supervisor, packager, transcoder, chat or web. */
  kind: z.string().min(1).max(32),
  /** Null while it waits to be started again. */
  pid: z.number().int().positive().nullable(),
  state: z.enum(['running', 'backoff', 'stopped']),
  /** Times the runner started it again after it exited. */
  restarts: z.number().int().nonnegative(),
  /** When its current (or last) run started, ms since epoch. */
  startedAt: z.number().int(),
  lastExit: z
    .object({ code: z.number().int().nullable(), signal: z.string().nullable(), at: z.number().int() })
    .nullable(),
});
export type LocalProcessStatus = z.infer<typeof localProcessStatus>;

export const localProcesses = z.object({
  /** `single` (one of each) or `fleet` (replicas behind balancers). */
  profile: z.enum(['single', 'fleet']),
  at: z.number().int(),
  processes: z.array(localProcessStatus).max(100),
});
export type LocalProcesses = z.infer<typeof localProcesses>;
