import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cacheControlFor, checkKey, contentTypeFor, InvalidKeyError, LocalStorage } from '../src/index.js';

const options = { contentType: 'video/iso.segment', cacheControl: 'x' };

test('local storage puts, gets, overwrites and deletes objects; missing is null', async () => {
  const root = mkdtempSync(join(tmpdir(), 'storage-'));
  const storage = new LocalStorage(root);
  await storage.put('demo/1/360p/seg_0.m4s', Buffer.from('abc'), options);
  assert.equal((await storage.get('demo/1/360p/seg_0.m4s'))?.toString(), 'abc');
  await storage.put('demo/1/360p/seg_0.m4s', Buffer.from('abcd'), options);
  assert.equal((await storage.get('demo/1/360p/seg_0.m4s'))?.toString(), 'abcd');
  assert.deepEqual(readdirSync(join(root, 'demo/1/360p')), ['seg_0.m4s'], 'no temp files left behind');
  await storage.delete('demo/1/360p/seg_0.m4s');
  await storage.delete('demo/1/360p/seg_0.m4s');
  assert.equal(await storage.get('demo/1/360p/seg_0.m4s'), null);
});

test('local storage makes missing folders, also when one is removed after its first object', async () => {
  const root = mkdtempSync(join(tmpdir(), 'storage-'));
  const storage = new LocalStorage(root);
  await storage.put('demo/1/720p/seg_0.m4s', Buffer.from('a'), options);
  rmSync(join(root, 'demo'), { recursive: true });
  await storage.put('demo/1/720p/seg_1.m4s', Buffer.from('b'), options);
  assert.equal((await storage.get('demo/1/720p/seg_1.m4s'))?.toString(), 'b');
  assert.deepEqual(readdirSync(join(root, 'demo/1/720p')), ['seg_1.m4s']);
});

test('local storage rejects a write it cannot make with the filesystem error, leaving nothing behind', async () => {
  const root = mkdtempSync(join(tmpdir(), 'storage-'));
  const storage = new LocalStorage(root);
  await storage.put('demo/file', Buffer.from('a file where a folder is wanted'), options);
  await assert.rejects(storage.put('demo/file/seg_0.m4s', Buffer.from('x'), options), /ENOTDIR/);
  assert.deepEqual(readdirSync(join(root, 'demo')), ['file']);
});

test('keys cannot escape the storage root', () => {
  for (const bad of ['../etc/passwd', 'demo/../../x', 'demo//x', '/abs/x', 'demo/./x', 'Demo/x', 'demo']) {
    assert.throws(() => checkKey(bad), InvalidKeyError, bad);
  }
  assert.equal(checkKey('demo/master.m3u8'), 'demo/master.m3u8');
});

test('content types and cache lifetimes: short for playlists, immutable for segments', () => {
  assert.equal(contentTypeFor('a/360p.m3u8'), 'application/vnd.apple.mpegurl');
  assert.equal(contentTypeFor('a/1/360p/seg_1.m4s'), 'video/iso.segment');
  assert.equal(contentTypeFor('a/1/360p/init.mp4'), 'video/mp4');
  assert.match(cacheControlFor('a/360p.m3u8'), /max-age=1/);
  assert.match(cacheControlFor('a/1/360p/seg_1.m4s'), /immutable/);
});
