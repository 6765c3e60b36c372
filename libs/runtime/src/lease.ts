// A leader lease on JetStream KV (live-leases/<role>), taken and renewed only with compare-and-set, so
// at most one replica of a role acts at a time. Works on nats-server 2.9 (no per-key TTL needed): expiry
// is a timestamp in the record. The holder renews every ttl/3; it considers itself leader only while its
// own clock is inside the lease minus a safety margin, so a paused holder that wakes up late stops
// acting before anyone else may take over (as long as clocks agree within that margin).
import { randomUUID } from 'node:crypto';
import { decode, encode, type NatsConnection } from '@live/bus';
import { buckets, type LeaseRecord, leaseRecord } from '@live/contracts';
import { type KV, Kvm } from '@nats-io/kv';
import type { Logger } from 'pino';

export interface LeaseOptions {
  nc: NatsConnection;
  logger: Logger;
  role: string;
  /** Lease length; a dead leader is replaced within about this long. */
  ttlMs: number;
  onAcquired: () => Promise<void> | void;
  onLost: () => Promise<void> | void;
}

export class LeaderLease {
  readonly holder = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private kv: KV | undefined;
  private revision = 0;
  private expiresAt = 0;
  private leading = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly o: LeaseOptions) {
    this.log = o.logger.child({ component: 'lease', role: o.role, holder: this.holder });
  }

  /** True while this replica holds an unexpired lease (with a margin of ttl/4 for clock skew and pauses). */
  isLeader(): boolean {
    return this.leading && Date.now() < this.expiresAt - this.o.ttlMs / 4;
  }

  async start(): Promise<void> {
    this.kv = await new Kvm(this.o.nc).open(buckets.leases);
    await this.tick();
  }

  /** Stops renewing; a held lease is released so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.leading && this.kv) {
      await this.kv.delete(this.o.role, { previousSeq: this.revision }).catch(() => {});
      await this.lose('released');
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.leading ? this.o.ttlMs / 3 : this.o.ttlMs / 4);
  }

  private async tick(): Promise<void> {
    const kv = this.kv;
    if (!kv || this.stopped) return;
    try {
      const now = Date.now();
      const record: LeaseRecord = { holder: this.holder, expiresAt: now + this.o.ttlMs };
      if (this.leading) {
        this.revision = await kv.update(this.o.role, encode(leaseRecord, record), this.revision);
        this.expiresAt = record.expiresAt;
      } else {
        const entry = await kv.get(this.o.role);
        const current = entry?.operation === 'PUT' ? decode(leaseRecord, entry.value) : null;
        const free = !current?.ok || current.value.expiresAt < now;
        if (free) {
          this.revision = entry
            ? await kv.update(this.o.role, encode(leaseRecord, record), entry.revision)
            : await kv.create(this.o.role, encode(leaseRecord, record));
          this.expiresAt = record.expiresAt;
          this.leading = true;
          this.log.info('leadership acquired');
          await this.o.onAcquired();
        }
      }
    } catch (error) {
      // A failed renewal (another holder won the compare-and-set, or NATS is unreachable) ends leadership.
      if (this.leading) await this.lose((error as Error).message);
    }
    if (this.leading && !this.isLeader()) await this.lose('lease ran out before it could be renewed');
    this.schedule();
  }

  private async lose(reason: string): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    this.log.warn({ reason }, 'leadership lost');
    await this.o.onLost();
  }
}
