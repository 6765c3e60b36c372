// Load-aware admission for long-lived connections. Kubernetes spreads new connections at random and never
// moves old ones; so every pod publishes its connection count in chat-nodes, computes the fair share from
// everyone's, and when it holds more than fair * (1 + slack) it reports not-ready (the load balancer stops
// sending it new clients) and sheds a small fraction of its clients per second with a reconnect hint.
import { encode, type KvWatch, watchKv } from '@live/bus';
import { buckets, type ChatNodeRecord, chatNodeRecord } from '@live/contracts';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';

export interface BalancerOptions {
  nc: NatsConnection;
  logger: Logger;
  podId: string;
  capacity: number;
  reportMs: number;
  slack: number;
  minExcess: number;
  shedPerSecond: number;
  connections: () => number;
  /** Ask `count` clients to reconnect; returns how many were asked. */
  shed: (count: number) => number;
}

export interface FairShare {
  pods: number;
  total: number;
  fair: number;
  mine: number;
  overloaded: boolean;
}

export class NodeBalancer {
  private readonly nodes = new Map<string, ChatNodeRecord>();
  private kv: KV | undefined;
  private watch: KvWatch | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private shedTimer: NodeJS.Timeout | undefined;
  private draining = false;
  private lastLoggedOverload = false;

  constructor(private readonly options: BalancerOptions) {}

  async start(): Promise<void> {
    this.kv = await new Kvm(this.options.nc).open(buckets.chatNodes);
    this.watch = await watchKv({
      nc: this.options.nc,
      logger: this.options.logger,
      bucket: buckets.chatNodes,
      schema: chatNodeRecord,
      onPut: (record) => {
        this.nodes.set(record.podId, record);
      },
      onDelete: (key) => this.nodes.delete(key),
    });
    await this.watch.initialized;
    await this.report();
    this.reportTimer = setInterval(() => void this.report(), this.options.reportMs);
    this.shedTimer = setInterval(() => this.shedExcess(), 1000);
  }

  /** The share computed from every live pod's last report (and this pod's count right now). */
  share(now = Date.now()): FairShare {
    const mine = this.options.connections();
    let total = this.draining ? 0 : mine;
    let pods = this.draining ? 0 : 1;
    let drainingLoad = this.draining ? mine : 0;
    for (const node of this.nodes.values()) {
      // A pod that missed three reports is gone (KV TTL would not tell watchers on NATS 2.9).
      if (node.podId === this.options.podId || now - node.at > 3 * this.options.reportMs) continue;
      if (node.draining) drainingLoad += node.connections;
      else {
        total += node.connections;
        pods++;
      }
    }
    // Clients of draining pods are about to land on the others: count them in everyone's share.
    total += drainingLoad;
    const fair = pods === 0 ? mine : total / pods;
    const overloaded =
      !this.draining &&
      pods > 1 &&
      mine > fair * (1 + this.options.slack) &&
      mine - fair >= this.options.minExcess;
    return { pods, total, fair: Math.round(fair), mine, overloaded };
  }

  /** Shutting down: tell the others now (not at the next report) so they stop counting on this pod. */
  async setDraining(): Promise<void> {
    this.draining = true;
    await this.report();
  }

  async stop(): Promise<void> {
    clearInterval(this.reportTimer);
    clearInterval(this.shedTimer);
    this.watch?.stop();
    await this.kv?.delete(this.options.podId).catch(() => undefined);
  }

  private async report(): Promise<void> {
    const record: ChatNodeRecord = {
      podId: this.options.podId,
      connections: this.options.connections(),
      capacity: this.options.capacity,
      draining: this.draining,
      at: Date.now(),
    };
    this.nodes.set(record.podId, record);
    try {
      await this.kv?.put(this.options.podId, encode(chatNodeRecord, record));
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'could not report load to chat-nodes');
    }
  }

  private shedExcess(): void {
    const share = this.share();
    if (share.overloaded !== this.lastLoggedOverload) {
      this.lastLoggedOverload = share.overloaded;
      this.options.logger.info(
        share,
        share.overloaded ? 'above fair share: not ready, shedding' : 'back within fair share',
      );
    }
    if (!share.overloaded) return;
    const count = Math.min(Math.ceil(share.mine * this.options.shedPerSecond), share.mine - share.fair);
    if (count > 0) this.options.shed(count);
  }
}
