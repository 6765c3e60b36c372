// Following a stream and watching a KV bucket through the SIGKILL of the NATS node that holds their
// consumer (an R1 ordered consumer lives on one node): both go on from where they were, in order, without
// a gap or a duplicate, while that node is still dead.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buckets, type ChatNodeRecord, chatNodeRecord, streams, subjects } from '@live/contracts';
import { createLogger } from '@live/log';
import { type NatsCluster, startNatsCluster, waitFor } from '@live/testing';
import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { bytes, connectBus, encode, followStream, provision, retry, watchKv } from '../src/index.js';

const logger = createLogger({
  service: 'follow-test',
  level: (process.env.TEST_LOG_LEVEL ?? 'fatal') as 'fatal',
});
let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
let kv: KV;

before(async () => {
  cluster = await startNatsCluster(3);
  nc = await connectBus({ servers: cluster.urls, name: 'follow-test', logger });
  await provision(nc, logger, { replicas: 3 });
  jsm = await jetstreamManager(nc);
  kv = await new Kvm(nc).open(buckets.chatNodes);
});
after(async () => {
  await nc?.close();
  await cluster?.dispose();
});

/** The node holding the stream's only consumer (the follower's). */
async function consumerHost(stream: string): Promise<string> {
  const consumers = await jsm.consumers.list(stream).next();
  assert.equal(consumers.length, 1, `one consumer on ${stream}`);
  const leader = consumers[0]?.cluster?.leader;
  assert.ok(leader, `the consumer on ${stream} has a node`);
  return leader;
}

const record = (podId: string, connections: number): ChatNodeRecord => ({
  podId,
  connections,
  capacity: 100,
  draining: false,
  at: Date.now(),
});

test('a follower and a KV watch go on, in order and once, when the node holding their consumer dies', {
  timeout: 90_000,
}, async () => {
  const js = jetstream(nc);
  const subject = subjects.chatRoom('follow');
  const acked: number[] = [];
  // Retried: a write lands once the stream has a leader again.
  const publish = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const ack = await retry(() => js.publish(subject, bytes(`m${acked.length + 1}`), { timeout: 2000 }), {
        what: 'publish',
        attempts: 100,
      });
      acked.push(ack.seq);
    }
  };
  const put = (podId: string, connections: number) =>
    retry(() => kv.put(podId, encode(chatNodeRecord, record(podId, connections))), {
      what: 'kv put',
      attempts: 100,
    });
  const remove = (podId: string) => retry(() => kv.delete(podId), { what: 'kv delete', attempts: 100 });

  await publish(3);
  await put('a', 1);
  await put('b', 1);
  const seen: number[] = [];
  const follower = await followStream({
    nc,
    stream: streams.chat,
    filterSubjects: subject,
    logger,
    what: 'test',
    onMessage: (m) => {
      seen.push(m.seq);
    },
  });
  const nodes = new Map<string, number>();
  const watch = await watchKv({
    nc,
    logger,
    bucket: buckets.chatNodes,
    schema: chatNodeRecord,
    onPut: (r) => {
      nodes.set(r.podId, r.connections);
    },
    onDelete: (key) => nodes.delete(key),
  });
  await watch.initialized;
  assert.deepEqual(Object.fromEntries(nodes), { a: 1, b: 1 }, 'the current values before initialized');
  await waitFor(() => seen.length === 3, { what: 'the stored messages' });

  // The node holding each consumer, one after the other (both at once could leave no quorum).
  const hosts = [await consumerHost(streams.chat), await consumerHost(`KV_${buckets.chatNodes}`)];
  for (const [round, host] of [...new Set(hosts)].entries()) {
    const node = cluster.servers.find((s) => s.child.name === host);
    assert.ok(node, `node ${host}`);
    await node.kill();
    await publish(3);
    await put('a', round + 2);
    await remove('b');
    await waitFor(() => seen.length === acked.length && nodes.get('a') === round + 2 && !nodes.has('b'), {
      timeoutMs: 20_000,
      what: `every message and the new values with ${host} dead`,
    }).catch((error: Error) => {
      const kvState = JSON.stringify(Object.fromEntries(nodes));
      throw new Error(`${error.message}: follower at ${seen.length} of ${acked.length}, watch ${kvState}`);
    });
    await node.start();
    await waitFor(
      async () => {
        for (const s of cluster.servers) if (!(await fetch(`${s.monitorUrl}/healthz`)).ok) return false;
        return true;
      },
      { timeoutMs: 30_000, what: `${host} back and current` },
    );
    await put('b', 1);
  }
  assert.deepEqual(seen, acked, 'every message once, in order');
  assert.ok(follower.restarts >= 1, 'the follower replaced its consumer');
  await follower.stop();
  watch.stop();
});
