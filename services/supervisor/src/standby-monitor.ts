// The warm standby pool: the supervisor wants at least SUPERVISOR_STANDBY_SLOTS free slots on live,
// non-draining workers, so that a failover or a drain never waits for a pod to be scheduled. When there are
// fewer it says so once (a `standby_short` alert on live.alert.standby, stored in LIVE_EVENTS, and a log
// line), and again when the pool is back (`standby_restored`). The gauges are for dashboards and alerting.
import { randomUUID } from 'node:crypto';
import type { OrderedPublisher } from '@live/bus';
import { type StandbyAlert, standbyAlert, subjects } from '@live/contracts';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { WorkerPool } from './worker-pool.js';

export interface StandbyMonitorOptions {
  pool: WorkerPool;
  events: OrderedPublisher;
  logger: Logger;
  metrics: Registry;
  required: number;
  checkMs: number;
  /** Heartbeats need this long to show every worker after a start (SUPERVISOR_WORKER_TIMEOUT_MS). */
  warmupMs: number;
}

export class StandbyMonitor {
  private short: boolean | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly createdAt = Date.now();
  private readonly log: Logger;

  constructor(private readonly o: StandbyMonitorOptions) {
    this.log = o.logger.child({ component: 'standby' });
    const pool = o.pool;
    new Gauge({
      name: 'supervisor_standby_free_slots',
      help: 'free transcoder slots on live, non-draining workers (the warm standby pool)',
      registers: [o.metrics],
      collect() {
        this.set(pool.standby().freeSlots);
      },
    });
    new Gauge({
      name: 'supervisor_standby_required_slots',
      help: 'SUPERVISOR_STANDBY_SLOTS: the free slots the supervisor wants to keep',
      registers: [o.metrics],
    }).set(o.required);
  }

  /** Only the leader alerts (replicas would repeat each other). */
  start(): void {
    this.short = undefined;
    this.timer = setInterval(() => this.check(), this.o.checkMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    if (Date.now() - this.createdAt < this.o.warmupMs) return;
    const { freeSlots, workers } = this.o.pool.standby();
    const short = freeSlots < this.o.required;
    if (short === this.short) return;
    const first = this.short === undefined;
    this.short = short;
    if (first && !short) return;
    const alert: StandbyAlert = {
      id: randomUUID(),
      type: short ? 'standby_short' : 'standby_restored',
      at: new Date().toISOString(),
      freeSlots,
      required: this.o.required,
      workers,
    };
    if (short)
      this.log.warn(
        { freeSlots, required: this.o.required, workers },
        'warm standby pool short: a failover or drain may find no worker',
      );
    else this.log.info({ freeSlots, required: this.o.required, workers }, 'warm standby pool restored');
    void this.o.events.publish(standbyAlert, subjects.standbyAlert, alert, alert.id);
  }
}
