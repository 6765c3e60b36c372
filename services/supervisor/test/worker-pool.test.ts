// The supervisor's view of its workers, fed by real heartbeats through a real nats-server: how slots given
// away are counted until the worker's own heartbeats show them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connectBus, encode } from '@live/bus';
import { subjects, type TranscoderHeartbeat, transcoderHeartbeat } from '@live/contracts';
import { createLogger } from '@live/log';
import { type NatsServer, startNatsServer, waitFor } from '@live/testing';
import type { NatsConnection } from '@nats-io/nats-core';
import { WorkerPool } from '../src/worker-pool.js';

const logger = createLogger({ service: 'worker-pool-test', level: 'fatal' });
/** A reservation the worker accepted but never lists lapses after this long (the pool's worker timeout). */
const TIMEOUT_MS = 400;
let nats: NatsServer;
let nc: NatsConnection;
let pool: WorkerPool;
/** Numbers each test heartbeat (sent as its `at`), so that `beat` waits for its own. */
let beatsSent = 0;

before(async () => {
  nats = await startNatsServer();
  nc = await connectBus({ servers: [nats.url], name: 'worker-pool-test', logger });
  pool = new WorkerPool(nc, logger, TIMEOUT_MS);
});
after(async () => {
  await nc?.close();
  await nats?.dispose();
});

/** Publishes a heartbeat of worker `workerId` running `streams`, and waits until the pool has it. */
async function beat(workerId: string, streams: string[], slots = 1): Promise<void> {
  // The pool reads the time of receipt, not `at`: here `at` numbers the beat so that we wait for this one.
  const nonce = ++beatsSent;
  const hb: TranscoderHeartbeat = {
    workerId,
    at: nonce,
    slots,
    free: slots - streams.length,
    draining: false,
    streams: streams.map((streamId) => ({
      streamId,
      epoch: 1,
      state: 'running' as const,
      frames: 0,
      mediaTimeMs: 0,
      speed: 1,
      lastSegmentAt: null,
    })),
  };
  // Wait for this very beat, not for `lastSeenAt` to move: two beats received in the same millisecond leave
  // it unchanged (a CI run hung here on a fast host). Listeners run after the pool has taken the beat in.
  let received = false;
  const stop = pool.onBeat((seen) => {
    if (seen.workerId === workerId && seen.at === nonce) received = true;
  });
  try {
    nc.publish(subjects.transcoderHealth(workerId), encode(transcoderHeartbeat, hb));
    await waitFor(() => received, { intervalMs: 2, what: 'the heartbeat' });
  } finally {
    stop();
  }
}

test('a slot given away stays taken through a heartbeat sent before the worker took the stream', async () => {
  await beat('w1', []);
  assert.deepEqual(pool.candidates(), ['w1']);
  pool.reserve('w1', 'a');
  assert.deepEqual(pool.candidates(), [], 'the offer in flight takes the only slot');
  pool.settle('w1', 'a', true);
  // Sent before the worker took `a`, received after its reply: it still shows the slot free.
  await beat('w1', []);
  assert.deepEqual(pool.candidates(), [], 'not offered twice');
  assert.equal(pool.standby().freeSlots, 0);
  // The worker's own heartbeat now counts the stream; the reservation has served its purpose.
  await beat('w1', ['a']);
  assert.deepEqual(pool.candidates(), []);
  // The stream ends: the slot is free again.
  await beat('w1', []);
  assert.deepEqual(pool.candidates(), ['w1']);
});

test('a refused offer frees its slot at once', async () => {
  await beat('w2', []);
  pool.reserve('w2', 'b');
  assert.ok(!pool.candidates().includes('w2'));
  pool.settle('w2', 'b', false);
  assert.ok(pool.candidates().includes('w2'));
});

test('an accepted stream the worker never lists (its job failed at once) frees the slot after the worker timeout', async () => {
  await beat('w3', []);
  pool.reserve('w3', 'c');
  const acceptedAt = Date.now(); // at or before the pool's own stamp in settle()
  pool.settle('w3', 'c', true);
  await beat('w3', []);
  assert.ok(!pool.candidates().includes('w3'));
  // Heartbeats keep coming without `c`; the first one after the timeout releases it.
  await waitFor(
    async () => {
      await beat('w3', []);
      return pool.candidates().includes('w3');
    },
    { what: 'the slot to be free again' },
  );
  assert.ok(Date.now() - acceptedAt >= TIMEOUT_MS, 'not before the timeout');
});

test('offering a stream to the worker already running it (a new epoch replaces its job) takes no slot', async () => {
  await beat('w4', ['d'], 2);
  pool.reserve('w4', 'd');
  pool.settle('w4', 'd', true);
  assert.ok(pool.candidates().includes('w4'), 'its other slot is still free');
});
