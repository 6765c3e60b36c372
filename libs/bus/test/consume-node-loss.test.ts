// A durable consumer (consume()) through the SIGKILL of the NATS node that leads it, while this client stays
// connected to another node: it must pull again soon after the consumer's new leader is elected, not after
// nats.js's default two missed 15 s heartbeats.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lifecycleEvent, streams, subjects } from '@live/contracts';
import { createLogger } from '@live/log';
import { startedEvent, startNatsCluster, waitFor } from '@live/testing';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectBus, consume, OrderedPublisher, provision } from '../src/index.js';

const logger = createLogger({ service: 'consume-node-loss-test', level: 'fatal' });

const started = (id: string) => startedEvent(id, 'nodeloss');

test('a durable consumer keeps receiving after the node leading it is killed', {
  timeout: 90_000,
}, async () => {
  const cluster = await startNatsCluster(3);
  const setup = await connectBus({ servers: cluster.urls, name: 'setup', logger });
  const received: string[] = [];
  try {
    await provision(setup, logger, { replicas: 3 });
    const jsm = await jetstreamManager(setup);
    // The consumer first, so its leader is known before anyone consumes.
    await jsm.consumers.add(streams.events, {
      durable_name: 'nodeloss',
      filter_subject: subjects.allStreamEvents,
      ack_policy: AckPolicy.Explicit,
    });
    const leader = (await jsm.consumers.info(streams.events, 'nodeloss')).cluster?.leader;
    const victim = cluster.servers.find((s) => s.child.name === leader);
    const other = cluster.servers.find((s) => s !== victim);
    assert.ok(victim && other, `the consumer's leader (${leader}) is one of the nodes`);
    // Connected to another node: this client sees no disconnect when the victim dies.
    const nc = await connectBus({ servers: [other.url], name: 'consumer', logger });
    const consumption = await consume({
      nc,
      logger,
      stream: streams.events,
      durable: 'nodeloss',
      filterSubject: subjects.allStreamEvents,
      schema: lifecycleEvent,
      handler: async (event) => void received.push(event.id),
    });
    const publisher = new OrderedPublisher({ js: jetstream(setup), logger });
    await publisher.publish(
      lifecycleEvent,
      subjects.streamEvent('nodeloss', 'started'),
      started('before'),
      'before',
    );
    await waitFor(() => received.includes('before'), { what: 'the first event' });

    victim.child.signal('SIGKILL');
    await victim.child.exited;
    const killedAt = Date.now();
    // Stored once the stream has a leader again (the publisher retries through the election).
    assert.ok(
      await publisher.publish(
        lifecycleEvent,
        subjects.streamEvent('nodeloss', 'started'),
        started('after'),
        'after',
      ),
    );
    const storedAt = Date.now();
    // The consumer's new leader is elected within seconds; nats.js's default (two missed heartbeats of
    // 15 s) would pull again only 30 s or more after the kill.
    await waitFor(() => received.includes('after'), {
      timeoutMs: 20_000,
      what: 'the event published after the kill',
    });
    console.log(`stored ${storedAt - killedAt} ms after the kill, handled ${Date.now() - killedAt} ms after`);
    await consumption.stop();
    await nc.close();
  } finally {
    await setup.close();
    await cluster.dispose();
  }
});
