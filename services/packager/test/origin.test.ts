import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger } from '@live/log';
import { cacheControl, LocalStorage } from '@live/storage';
import { sendMalformedRequests } from '@live/testing';
import { startOrigin } from '../src/origin/origin.js';

const storage = new LocalStorage(mkdtempSync(join(tmpdir(), 'origin-')));
let origin: Awaited<ReturnType<typeof startOrigin>>;
let base = '';
before(async () => {
  origin = await startOrigin({
    port: 0,
    bind: '127.0.0.1',
    storage,
    logger: createLogger({ service: 't', level: 'fatal' }),
  });
  base = `http://127.0.0.1:${origin.port}`;
  await storage.put('demo/master.m3u8', Buffer.from('#EXTM3U\n'), { contentType: '', cacheControl: '' });
  await storage.put('demo/1/360p/seg_0.m4s', Buffer.from('media'), { contentType: '', cacheControl: '' });
});
after(() => origin.close());

test('playlists and segments are served with MIME types, CORS and cache lifetimes', async () => {
  const playlist = await fetch(`${base}/hls/demo/master.m3u8`);
  assert.equal(playlist.status, 200);
  assert.equal(playlist.headers.get('content-type'), 'application/vnd.apple.mpegurl');
  assert.equal(playlist.headers.get('cache-control'), cacheControl.playlist);
  assert.equal(playlist.headers.get('access-control-allow-origin'), '*');
  const segment = await fetch(`${base}/hls/demo/1/360p/seg_0.m4s`);
  assert.equal(segment.headers.get('content-type'), 'video/iso.segment');
  assert.equal(segment.headers.get('cache-control'), cacheControl.segment);
  assert.equal(await segment.text(), 'media');
  const preflight = await fetch(`${base}/hls/demo/master.m3u8`, { method: 'OPTIONS' });
  assert.equal(preflight.status, 204);
});

test('missing objects are 404, paths that try to escape are 400, pages are not here (services/web)', async () => {
  assert.equal((await fetch(`${base}/hls/demo/none.m3u8`)).status, 404);
  assert.equal((await fetch(`${base}/hls/demo/..%2F..%2Fetc%2Fpasswd`)).status, 400);
  assert.equal((await fetch(`${base}/watch/demo`)).status, 404);
});

test("hostile requests get a 400 with the reason (or Node's own 4xx), and the origin goes on serving", async () => {
  // `GET http://a:b/ HTTP/1.1` made `new URL` throw out of the handler: the packager exited.
  const answers = await sendMalformedRequests(origin.port);
  const status = (name: string) => answers.find((a) => a.name === name)?.status;
  assert.equal(status('absolute-form with an invalid port'), 400);
  assert.equal(status('absolute-form with an unclosed IPv6 host'), 400);
  assert.equal(status('bad percent-encoding under /hls/'), 400);
  assert.equal(status('bad percent-encoding'), 400);
  assert.equal(status('64 KiB URL'), 431);
  assert.equal(status('binary request line'), 400);
  assert.equal((await fetch(`${base}/hls/demo/master.m3u8`)).status, 200, 'a playlist after them');
});
