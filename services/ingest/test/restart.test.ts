// NATS restarts under a live stream: the ingest keeps the publisher, reconnects, and no lifecycle event
// is lost (events published during the outage are stored once NATS is back, in order).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decode } from '@live/bus';
import { lifecycleEvent, streams } from '@live/contracts';
import { type Child, startPublisher, waitFor } from '@live/testing';
import { jetstream } from '@nats-io/jetstream';
import { type IngestHarness, startIngestHarness } from './harness.js';

let h: IngestHarness;
let publisher: Child | undefined;
before(async () => {
  h = await startIngestHarness();
});
after(async () => {
  await publisher?.stop('SIGKILL');
  await h?.stop();
});

test('a NATS server restart mid-stream does not kill ingest or lose events', async () => {
  const key = await h.createKey('survivor');
  publisher = startPublisher({ url: h.publishUrl(key), width: 320, height: 180 });
  await h.waitForEvent('survivor', 'started');

  await h.nats.stop();
  // While NATS is down the streamer leaves: `source_stalled` and (after the grace period) `ended` must
  // still reach JetStream once it is back.
  await publisher.stop('SIGKILL');
  await waitFor(() => h.logs.some((l) => l.message === 'stream ended' && l.streamId === 'survivor'), {
    timeoutMs: 10_000,
    what: 'the ingest to end the stream while NATS is down',
  });
  assert.ok(!h.ingest.hasExited(), 'ingest survives the outage');
  await h.nats.start();

  const js = jetstream(h.nc);
  const types = await waitFor(
    async () => {
      const consumer = await js.consumers.get(streams.events, { filter_subjects: 'live.stream.survivor.>' });
      const seen: string[] = [];
      for (;;) {
        const m = await consumer.next({ expires: 1000 });
        if (!m) break;
        const d = decode(lifecycleEvent, m.data);
        assert.ok(d.ok);
        seen.push(d.value.type);
      }
      return seen.length >= 3 ? seen : undefined;
    },
    { timeoutMs: 20_000, what: 'the stored events after the restart' },
  );
  assert.deepEqual(types, ['started', 'source_stalled', 'ended']);

  // Health and service discovery work again after the reconnect.
  const next = await h.createKey('after-restart');
  assert.ok(next.startsWith('live_'));
  assert.ok(!h.ingest.hasExited());
});
