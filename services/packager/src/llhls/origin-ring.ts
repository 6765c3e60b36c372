// Which packager replica answers a stream's LL-HLS playlists. Every replica builds every stream's LL state
// from shared state (segment events, assignments; part events while it is watched), and parts and segments
// have the same names and bytes everywhere, and the same media sequence numbers (the owner shares its
// numbering in live-ll-numbering and the others follow it: ll-origin.ts). But which parts a replica lists
// depends on what it heard (a replica hears a stream's parts only while it is watched through it), so a
// viewer whose playlist requests reached different replicas could see parts come and go. So each stream's
// playlists come from one replica, its owner, chosen by rendezvous hashing (highest hash of stream id +
// replica id) over the replicas heard from in the last few seconds that have been up for `warmMs` (a new
// replica first builds up its window). Any other replica forwards playlist requests to the owner; parts and
// segments it serves itself (those it has not heard of through the owner). When the owner goes away its
// streams move to the next replica in their ranking, which numbers them alike (docs/architecture.md,
// "One numbering on every replica", for what it does not cover).
import { createHash } from 'node:crypto';
import { type NatsConnection, publishCore, subscribeValidated } from '@live/bus';
import { type OriginHeartbeat, originHeartbeat, subjects } from '@live/contracts';
import type { Logger } from 'pino';

export interface OriginRingOptions {
  nc: NatsConnection;
  logger: Logger;
  originId: string;
  /** Where the other replicas reach this one's HTTP origin. */
  url: string;
  heartbeatMs?: number;
  /** A replica not heard from for this long is gone. */
  staleMs?: number;
  /** A replica owns streams only after it has been up this long (its playlist window is full by then). */
  warmMs: number;
}

export interface OriginMember {
  originId: string;
  url: string;
}

/** Rendezvous score of a replica for a stream: the highest-scoring warm replica owns it. */
export const ownerScore = (streamId: string, originId: string): number =>
  createHash('sha1').update(`${streamId}\n${originId}`).digest().readUInt32BE(0);

export class OriginRing {
  private readonly members = new Map<string, OriginHeartbeat & { seenAt: number }>();
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private subscription: { unsubscribe(): void } | undefined;

  constructor(private readonly o: OriginRingOptions) {}

  start(): void {
    this.subscription = subscribeValidated({
      nc: this.o.nc,
      logger: this.o.logger,
      subject: subjects.allOriginHealth,
      schema: originHeartbeat,
      name: 'origin-ring',
      handler: (beat) => this.members.set(beat.originId, { ...beat, seenAt: Date.now() }),
    });
    const beat = () =>
      publishCore(this.o.nc, originHeartbeat, subjects.originHealth(this.o.originId), {
        originId: this.o.originId,
        url: this.o.url,
        startedAt: this.startedAt,
        at: Date.now(),
      });
    beat();
    this.timer = setInterval(beat, this.o.heartbeatMs ?? 1000);
    this.timer.unref();
  }

  /**
   * True once this replica has listened for longer than a heartbeat period: before that it may not have
   * heard of the owner of a stream yet (readiness waits for it, so no viewer reaches it earlier).
   */
  get informed(): boolean {
    return Date.now() - this.startedAt > 1.5 * (this.o.heartbeatMs ?? 1000);
  }

  stop(): void {
    clearInterval(this.timer);
    this.subscription?.unsubscribe();
  }

  /** The replica that answers this stream's playlists; null when it is this one. */
  owner(streamId: string): OriginMember | null {
    const now = Date.now();
    const staleMs = this.o.staleMs ?? 3000;
    let best: { member: OriginMember; score: number } | undefined;
    for (const m of this.members.values()) {
      // Gone, or not warm yet (this replica too: until it is, it forwards to a warm one). With no warm
      // replica at all (everything just started), each answers its own playlists.
      if (now - m.seenAt > staleMs || now - m.startedAt < this.o.warmMs) continue;
      const s = ownerScore(streamId, m.originId);
      if (!best || s > best.score) best = { member: { originId: m.originId, url: m.url }, score: s };
    }
    return !best || best.member.originId === this.o.originId ? null : best.member;
  }
}
