// Which transcoder workers are alive and how loaded, from their heartbeats on core NATS (not KV TTLs:
// nats-server 2.9 does not tell watchers about expiries).
import { type NatsConnection, subscribeValidated } from '@live/bus';
import { subjects, type TranscoderHeartbeat, transcoderHeartbeat } from '@live/contracts';
import type { Logger } from 'pino';

interface Seen {
  beat: TranscoderHeartbeat;
  lastSeenAt: number;
  /** Slots given away since this heartbeat (the next beat will show them). */
  pending: number;
}

export type BeatListener = (beat: TranscoderHeartbeat, receivedAt: number) => void;

export class WorkerPool {
  private readonly workers = new Map<string, Seen>();
  private readonly listeners = new Set<BeatListener>();

  constructor(
    nc: NatsConnection,
    logger: Logger,
    private readonly timeoutMs: number,
  ) {
    subscribeValidated({
      nc,
      logger,
      subject: subjects.allTranscoderHealth,
      schema: transcoderHeartbeat,
      name: 'supervisor-heartbeats',
      handler: (beat) => {
        const now = Date.now();
        if (!this.workers.has(beat.workerId))
          logger.info({ workerId: beat.workerId, slots: beat.slots }, 'worker joined');
        this.workers.set(beat.workerId, { beat, lastSeenAt: now, pending: 0 });
        for (const listener of this.listeners) listener(beat, now);
      },
    });
  }

  /** Every heartbeat, validated once here; returns a function that stops listening. */
  onBeat(listener: BeatListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** When the worker's last heartbeat arrived (0 if never). */
  lastSeenAt(workerId: string): number {
    return this.workers.get(workerId)?.lastSeenAt ?? 0;
  }

  isAlive(workerId: string): boolean {
    const seen = this.workers.get(workerId);
    return !!seen && Date.now() - seen.lastSeenAt < this.timeoutMs;
  }

  /** Alive, not draining, with a free slot; least loaded first. */
  candidates(exclude: string[] = []): string[] {
    return [...this.workers.values()]
      .filter((w) => this.isAlive(w.beat.workerId) && !w.beat.draining && !exclude.includes(w.beat.workerId))
      .map((w) => ({
        id: w.beat.workerId,
        free: w.beat.free - w.pending,
        load: (w.beat.slots - w.beat.free + w.pending) / w.beat.slots,
      }))
      .filter((w) => w.free > 0)
      .sort((a, b) => a.load - b.load || b.free - a.free)
      .map((w) => w.id);
  }

  /** The warm standby capacity: free slots on live, non-draining workers, and how many such workers. */
  standby(): { freeSlots: number; workers: number } {
    const ready = [...this.workers.values()].filter((w) => this.isAlive(w.beat.workerId) && !w.beat.draining);
    return {
      freeSlots: ready.reduce((sum, w) => sum + Math.max(0, w.beat.free - w.pending), 0),
      workers: ready.length,
    };
  }

  reserve(workerId: string): void {
    const seen = this.workers.get(workerId);
    if (seen) seen.pending++;
  }

  get size(): number {
    return [...this.workers.keys()].filter((id) => this.isAlive(id)).length;
  }
}
