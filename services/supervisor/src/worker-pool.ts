// Which transcoder workers are alive and how loaded, from their heartbeats on core NATS (not KV TTLs:
// nats-server 2.9 does not tell watchers about expiries).
import { type NatsConnection, subscribeValidated } from '@live/bus';
import { subjects, type TranscoderHeartbeat, transcoderHeartbeat } from '@live/contracts';
import type { Logger } from 'pino';

interface Seen {
  beat: TranscoderHeartbeat;
  lastSeenAt: number;
  /**
   * Streams offered to or accepted by this worker that its heartbeats do not list yet, each taking a slot
   * its last heartbeat still shows free: with when the worker accepted it (null while the offer is in flight).
   * Keyed by stream, so that a heartbeat sent before the worker took a stream but arriving after its reply
   * (they travel on different subjects) leaves the reservation in place, and the slot is not offered twice.
   */
  reserved: Map<string, number | null>;
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
        const seen = this.workers.get(beat.workerId);
        if (!seen) logger.info({ workerId: beat.workerId, slots: beat.slots }, 'worker joined');
        const reserved = seen?.reserved ?? new Map<string, number | null>();
        // A stream the heartbeat lists is counted in its `free`. One it still does not list a worker timeout
        // after being accepted was dropped by the worker (a job that failed at once): its slot is free again.
        for (const stream of beat.streams) reserved.delete(stream.streamId);
        for (const [streamId, acceptedAt] of reserved)
          if (acceptedAt !== null && now - acceptedAt > this.timeoutMs) reserved.delete(streamId);
        this.workers.set(beat.workerId, { beat, lastSeenAt: now, reserved });
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
        free: w.beat.free - w.reserved.size,
        load: (w.beat.slots - w.beat.free + w.reserved.size) / w.beat.slots,
      }))
      .filter((w) => w.free > 0)
      .sort((a, b) => a.load - b.load || b.free - a.free)
      .map((w) => w.id);
  }

  /** The warm standby capacity: free slots on live, non-draining workers, and how many such workers. */
  standby(): { freeSlots: number; workers: number } {
    const ready = [...this.workers.values()].filter((w) => this.isAlive(w.beat.workerId) && !w.beat.draining);
    return {
      freeSlots: ready.reduce((sum, w) => sum + Math.max(0, w.beat.free - w.reserved.size), 0),
      workers: ready.length,
    };
  }

  /** A slot taken by an offer of this stream to this worker (until its heartbeats list the stream). */
  reserve(workerId: string, streamId: string): void {
    const seen = this.workers.get(workerId);
    // Already running it (a new epoch, or the same one again, replaces its job): no further slot.
    if (!seen || seen.beat.streams.some((s) => s.streamId === streamId)) return;
    seen.reserved.set(streamId, null);
  }

  /** The offer's answer: accepted, the slot stays taken until a heartbeat lists the stream; refused, freed. */
  settle(workerId: string, streamId: string, accepted: boolean): void {
    const reserved = this.workers.get(workerId)?.reserved;
    if (!reserved?.has(streamId)) return;
    if (accepted) reserved.set(streamId, Date.now());
    else reserved.delete(streamId);
  }

  get size(): number {
    return [...this.workers.keys()].filter((id) => this.isAlive(id)).length;
  }
}
