// GcsStorage with the real @google-cloud/storage client against an emulator of the GCS JSON API (no real
// GCS is reachable offline). To run the same checks against a real bucket, see docs/operations.md
// ("Storage on GCS"): GCS_TEST_BUCKET with Application Default Credentials.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Storage as GcsClient } from '@google-cloud/storage';
import { GcsEmulator } from '@live/testing';
import { cacheControl, GcsStorage } from '../src/index.js';

const emulator = new GcsEmulator();
let storage: GcsStorage;
before(async () => {
  const url = await emulator.start();
  storage = new GcsStorage({
    bucket: 'live-media',
    prefix: 'live/',
    apiEndpoint: url,
    projectId: 'test',
    resumableThresholdBytes: 512 * 1024,
    chunkSizeBytes: 256 * 1024,
  });
});
after(() => emulator.stop());

test('a segment is uploaded with its content type and cache lifetime, read back, deleted', async () => {
  const data = randomBytes(50_000);
  await storage.put('demo/1/360p/seg_0.m4s', data, {
    contentType: 'video/iso.segment',
    cacheControl: cacheControl.segment,
  });
  const stored = emulator.objects.get('live-media/live/demo/1/360p/seg_0.m4s');
  assert.equal(stored?.contentType, 'video/iso.segment');
  assert.equal(stored?.cacheControl, cacheControl.segment);
  assert.ok(emulator.requests.some((r) => r.includes('uploadType=multipart')));
  assert.deepEqual(await storage.get('demo/1/360p/seg_0.m4s'), data);
  await storage.delete('demo/1/360p/seg_0.m4s');
  await storage.delete('demo/1/360p/seg_0.m4s');
  assert.equal(await storage.get('demo/1/360p/seg_0.m4s'), null);
});

test('a large object goes up as a resumable upload in several chunks', async () => {
  const data = randomBytes(1024 * 1024 + 123);
  const before = emulator.requests.length;
  await storage.put('demo/big.mp4', data, { contentType: 'video/mp4', cacheControl: cacheControl.segment });
  const calls = emulator.requests.slice(before);
  assert.ok(calls.some((r) => r.startsWith('POST') && r.includes('uploadType=resumable')));
  assert.ok(calls.filter((r) => r.startsWith('PUT')).length >= 4, `chunks: ${calls.join(' | ')}`);
  assert.deepEqual(await storage.get('demo/big.mp4'), data);
});

test('a playlist overwrite is retried through a transient 503', async () => {
  emulator.failNext = { pattern: /\/upload\//, count: 1 };
  await storage.put('demo/360p.m3u8', Buffer.from('#EXTM3U\n'), {
    contentType: 'application/vnd.apple.mpegurl',
    cacheControl: cacheControl.playlist,
  });
  assert.equal(emulator.failNext.count, 0, 'the injected failure happened');
  assert.equal((await storage.get('demo/360p.m3u8'))?.toString(), '#EXTM3U\n');
});

test('the emulator enforces generation preconditions like GCS (412)', async () => {
  const client = new GcsClient({ apiEndpoint: emulator.url, projectId: 'test' });
  const file = client.bucket('live-media').file('fence/owner');
  await file.save('first', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
  await assert.rejects(
    file.save('second', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }),
    (error: { code?: number }) => error.code === 412,
  );
});

// Against a real bucket: GCS_TEST_BUCKET=<bucket> with Application Default Credentials
// (gcloud auth application-default login, or Workload Identity). Not run when unset: nothing offline
// can stand in for Google's side of this.
const realBucket = process.env.GCS_TEST_BUCKET;
test('real GCS: put, get, delete under a throwaway prefix', {
  skip: realBucket ? false : 'GCS_TEST_BUCKET is not set',
}, async () => {
  const real = new GcsStorage({ bucket: realBucket as string, prefix: `live-test-${Date.now()}/` });
  const data = randomBytes(10_000);
  await real.put('demo/1/360p/seg_0.m4s', data, {
    contentType: 'video/iso.segment',
    cacheControl: cacheControl.segment,
  });
  assert.deepEqual(await real.get('demo/1/360p/seg_0.m4s'), data);
  await real.delete('demo/1/360p/seg_0.m4s');
  assert.equal(await real.get('demo/1/360p/seg_0.m4s'), null);
});
