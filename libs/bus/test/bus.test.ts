import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { lifecycleEvent, streams, subjects } from '@live/contracts';
import { createLogger } from '@live/log';
import { type NatsServer, startedEvent, startNatsCluster, startNatsServer, waitFor } from '@live/testing';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  bytes,
  connectBus,
  consume,
  deadLetterSchema,
  decode,
  type HeldMessage,
  MAX_RETRY_DELAY_MS,
  OrderedPublisher,
  provision,
  publishCore,
  retryDelayMs,
} from '../src/index.js';

const logger = createLogger({ service: 'bus-test', level: 'fatal' });
let server: NatsServer;
let nc: NatsConnection;

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url], name: 'bus-test', logger });
  await provision(nc, logger);
});
after(async () => {
  await nc?.close();
  await server?.dispose();
});

const started = (id: string, streamId = 'dlqtest') => startedEvent(id, streamId);

test('provisioning is idempotent and creates every stream and bucket', async () => {
  await provision(nc, logger);
  const jsm = await jetstreamManager(nc);
  for (const name of [streams.events, streams.media, streams.deadLetters]) {
    assert.equal((await jsm.streams.info(name)).config.name, name);
  }
  const kv = await new Kvm(nc).open('stream-keys');
  assert.equal((await kv.status()).bucket, 'stream-keys');
});

test('an invalid event is dead-lettered with the reason and the consumer keeps going', async () => {
  const seen: string[] = [];
  const consumption = await consume({
    nc,
    logger,
    stream: streams.events,
    durable: 'dlq-test',
    filterSubject: 'live.stream.dlqtest.>',
    schema: lifecycleEvent,
    handler: async (event) => {
      seen.push(event.id);
    },
  });
  const js = jetstream(nc);
  const badSubject = subjects.streamEvent('dlqtest', 'started');
  await js.publish(badSubject, bytes('{"type":"started","streamId":"UPPER CASE"}'));
  await js.publish(badSubject, bytes('not json'));
  const publisher = new OrderedPublisher({ js, logger });
  assert.ok(await publisher.publish(lifecycleEvent, badSubject, started('good-1'), 'good-1'));

  await waitFor(() => seen.includes('good-1'), { what: 'the valid event after two invalid ones' });
  const dlq = await jetstream(nc).consumers.get(streams.deadLetters);
  const letters = [];
  for (let i = 0; i < 2; i++) {
    const m = await dlq.next({ expires: 5000 });
    assert.ok(m, 'a dead letter is stored');
    assert.equal(m.subject, `live.dlq.${badSubject}`);
    const letter = decode(deadLetterSchema, m.data);
    assert.ok(letter.ok);
    letters.push(letter.value);
  }
  assert.match(letters[0]?.reason ?? '', /streamId/);
  assert.match(letters[1]?.reason ?? '', /not JSON/);
  assert.equal(letters[1]?.payload, 'not json');
  assert.deepEqual(seen, ['good-1']);
  await consumption.stop();
});

test('a failed message is retried after a doubling delay capped at 5 s, with jitter', () => {
  const low = () => 0;
  const high = () => 0.999999;
  // Doubling from 250 ms while below the cap; then never more than the cap, however many attempts.
  assert.equal(retryDelayMs(1, high), 500);
  assert.equal(retryDelayMs(3, high), 2000);
  assert.equal(MAX_RETRY_DELAY_MS, 5000);
  for (const attempt of [5, 10, 15, 19, 40]) {
    assert.equal(retryDelayMs(attempt, high), MAX_RETRY_DELAY_MS, `attempt ${attempt}`);
    // Jitter: half to all of the delay, so messages that failed together are retried apart.
    assert.equal(retryDelayMs(attempt, low), MAX_RETRY_DELAY_MS / 2, `attempt ${attempt}`);
  }
  for (let i = 0; i < 100; i++) {
    const delay = retryDelayMs(12);
    assert.ok(delay >= 2500 && delay <= 5000, `${delay}`);
  }
});

test('a held message is not acked when its handler returns; stopping hands it back at once to the next consumer, which acks it', async () => {
  const publisher = new OrderedPublisher({ js: jetstream(nc), logger });
  const subject = subjects.streamEvent('holdtest', 'started');
  const options = {
    nc,
    logger,
    stream: streams.events,
    durable: 'hold-test',
    filterSubject: 'live.stream.holdtest.>',
    schema: lifecycleEvent,
  };
  const firstSeen: string[] = [];
  const first = await consume({
    ...options,
    handler: async (event, meta) => {
      firstSeen.push(event.id);
      if (event.id === 'held-1') meta.hold();
    },
  });
  assert.ok(await publisher.publish(lifecycleEvent, subject, started('held-1', 'holdtest'), 'held-1'));
  assert.ok(await publisher.publish(lifecycleEvent, subject, started('plain-1', 'holdtest'), 'plain-1'));
  // The held one does not block the next.
  await waitFor(() => firstSeen.includes('plain-1'), { what: 'the message after the held one' });
  const jsm = await jetstreamManager(nc);
  assert.equal((await jsm.consumers.info(streams.events, 'hold-test')).num_ack_pending, 1);
  const stoppedAt = Date.now();
  await first.stop();
  // The next consumer (a new leader) gets it without waiting for the ack wait (10 s) to run out.
  const secondSeen: { id: string; redelivered: boolean; deliveryCount: number }[] = [];
  let held: HeldMessage | undefined;
  const second = await consume({
    ...options,
    handler: async (event, meta) => {
      secondSeen.push({ id: event.id, redelivered: meta.redelivered, deliveryCount: meta.deliveryCount });
      held = meta.hold();
    },
  });
  await waitFor(() => secondSeen.length > 0, { what: 'the held message handed back' });
  assert.ok(Date.now() - stoppedAt < 5000, `handed back after ${Date.now() - stoppedAt} ms`);
  assert.deepEqual(secondSeen, [{ id: 'held-1', redelivered: true, deliveryCount: 2 }]);
  held?.ack();
  await waitFor(async () => (await jsm.consumers.info(streams.events, 'hold-test')).num_ack_pending === 0, {
    what: 'the ack',
  });
  await second.stop();
  assert.equal((await jsm.consumers.info(streams.events, 'hold-test')).num_pending, 0);
});

test('publishing a schema-invalid event is refused before it reaches NATS', async () => {
  const publisher = new OrderedPublisher({ js: jetstream(nc), logger });
  const bad = { ...started('bad'), streamId: 'Not Valid' };
  assert.throws(() => publisher.publish(lifecycleEvent, 'live.stream.x.started', bad, 'bad'), /streamId/);
});

test('core publishes are validated, delivered, and skipped (false, no throw) once the connection drains', async () => {
  const other = await connectBus({ servers: [server.url], name: 'bus-test-core', logger });
  const received: unknown[] = [];
  const sub = nc.subscribe('live.test.core', {
    callback: (_e, m) => {
      received.push(decode(lifecycleEvent, m.data));
    },
  });
  await nc.flush();
  assert.equal(publishCore(other, lifecycleEvent, 'live.test.core', started('c1')), true);
  await other.flush();
  await waitFor(() => received.length === 1, { what: 'the core message' });
  assert.throws(
    () => publishCore(other, lifecycleEvent, 'live.test.core', { ...started('c2'), streamId: 'Bad Id' }),
    /streamId/,
  );
  // nats.js throws DrainingConnectionError here; a heartbeat timer racing a shutdown must not crash.
  const draining = other.drain();
  assert.equal(publishCore(other, lifecycleEvent, 'live.test.core', started('c3')), false);
  await draining;
  assert.equal(publishCore(other, lifecycleEvent, 'live.test.core', started('c4')), false);
  sub.unsubscribe();
});

test('the ordered publisher keeps events through a NATS restart, in order, without duplicates', async () => {
  const js = jetstream(nc);
  const publisher = new OrderedPublisher({ js, logger });
  await server.stop();
  const results = ['r1', 'r2', 'r3'].map((id) =>
    publisher.publish(lifecycleEvent, subjects.streamEvent('restart', 'started'), started(id, 'restart'), id),
  );
  await server.start();
  assert.deepEqual(await Promise.all(results), [true, true, true]);
  // Same ids again: deduplicated by the server (Nats-Msg-Id).
  await publisher.publish(
    lifecycleEvent,
    subjects.streamEvent('restart', 'started'),
    started('r3', 'restart'),
    'r3',
  );
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.events, { subjects_filter: 'live.stream.restart.>' });
  assert.equal(info.state.subjects?.['live.stream.restart.started'], 3);
});

test('a 3-node cluster provisions replicated streams and survives losing one node', async () => {
  const cluster = await startNatsCluster(3);
  const cnc = await connectBus({ servers: cluster.urls, name: 'cluster-test', logger });
  try {
    await provision(cnc, logger, { replicas: 3 });
    const jsm = await jetstreamManager(cnc);
    const info = await jsm.streams.info(streams.events);
    assert.equal(info.config.num_replicas, 3);
    await cluster.servers[2]?.stop();
    const publisher = new OrderedPublisher({ js: jetstream(cnc), logger });
    assert.ok(
      await publisher.publish(
        lifecycleEvent,
        subjects.streamEvent('cl', 'started'),
        started('c1', 'cl'),
        'c1',
      ),
    );
  } finally {
    await cnc.close();
    await cluster.dispose();
  }
});
