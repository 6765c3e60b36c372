import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connectBus, provision } from '@live/bus';
import { buckets } from '@live/contracts';
import { createLogger } from '@live/log';
import { type NatsServer, startNatsServer, waitFor } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { LeaderLease } from '../src/index.js';

const logger = createLogger({ service: 'lease-test', level: 'fatal' });
let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url], name: 'lease-test', logger });
  await provision(nc, logger);
});
after(async () => {
  await nc?.close();
  await server?.dispose();
});

function candidate(role: string, log: string[], name: string) {
  return new LeaderLease({
    nc,
    logger,
    role,
    ttlMs: 600,
    onAcquired: () => void log.push(`${name} acquired`),
    onLost: () => void log.push(`${name} lost`),
  });
}

test('exactly one of several replicas leads; a released lease is taken over at once', async () => {
  const log: string[] = [];
  const a = candidate('role-a', log, 'a');
  const b = candidate('role-a', log, 'b');
  await Promise.all([a.start(), b.start()]);
  await waitFor(() => a.isLeader() || b.isLeader(), { what: 'a leader' });
  // Through several renewals (each a new revision of the lease record) there is never more than one, at
  // every look. (Not "exactly one" at every look: a holder whose renewal is held up past ttl/4 by a busy
  // machine rightly stops calling itself leader until the renewal lands.)
  const lease = await new Kvm(nc).open(buckets.leases);
  const revision = async () => (await lease.get('role-a'))?.revision ?? 0;
  const first = await revision();
  await waitFor(
    async () => {
      assert.ok(Number(a.isLeader()) + Number(b.isLeader()) <= 1, 'never two leaders');
      return (await revision()) >= first + 3;
    },
    { intervalMs: 20, what: 'three lease renewals' },
  );
  const leader = await waitFor(() => (a.isLeader() ? a : b.isLeader() ? b : null), { what: 'the leader' });
  const standby = leader === a ? b : a;
  assert.equal(standby.isLeader(), false, 'one leader');
  await leader.stop();
  await waitFor(() => standby.isLeader(), { timeoutMs: 2000, what: 'the standby to take over' });
  assert.equal(log.filter((l) => l.endsWith('acquired')).length, 2);
  await standby.stop();
});

test('a leader that stops renewing (as if paused or dead) is replaced after its lease runs out', async () => {
  const log: string[] = [];
  const a = candidate('role-b', log, 'a');
  // Before a writes its lease (ttl 600 ms from its write): b can take it no sooner than 600 ms after this.
  const since = Date.now();
  await a.start();
  assert.ok(a.isLeader());
  // Simulate a frozen leader: stop its renewals without releasing the lease.
  (a as unknown as { stopped: boolean }).stopped = true;
  const b = candidate('role-b', log, 'b');
  await b.start();
  await waitFor(() => b.isLeader(), { timeoutMs: 3000, what: 'b to take over an expired lease' });
  assert.ok(Date.now() - since >= 600, 'not before the lease ran out');
  assert.equal(a.isLeader(), false, 'the frozen holder knows by its own clock that it no longer leads');
  await b.stop();
});
