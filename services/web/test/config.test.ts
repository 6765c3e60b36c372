import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, checkEnvExample } from '@live/config';
import { repoRoot } from '@live/testing';
import { loadWebConfig, webConfigSchema } from '../src/config.js';
import { contentSecurityPolicy } from '../src/gateway/server.js';

test('.env.example lists every variable with a valid value, and nothing else', () => {
  assert.deepEqual(checkEnvExample(webConfigSchema, join(repoRoot, 'services/web/.env.example')), []);
});

test('production needs the admin token; local mode may turn auth off explicitly; bad values are named', () => {
  assert.throws(
    () => loadWebConfig({}),
    (error: unknown) => error instanceof ConfigError && /WEB_ADMIN_TOKEN/.test(error.message),
  );
  assert.throws(
    () => loadWebConfig({ WEB_ADMIN_TOKEN: 'short' }),
    (error: unknown) => error instanceof ConfigError && /at least 24 characters/.test(error.message),
  );
  assert.equal(loadWebConfig({ WEB_AUTH: 'none' }).WEB_AUTH, 'none');
  assert.equal(
    loadWebConfig({ WEB_ADMIN_TOKEN: 'x'.repeat(24) }).WEB_GUEST_CHAT,
    false,
    'guests off by default',
  );
  assert.throws(
    () => loadWebConfig({ WEB_AUTH: 'none', WEB_CHAT_URL: 'http://chat' }),
    (error: unknown) => error instanceof ConfigError && /WEB_CHAT_URL/.test(error.message),
  );
  assert.throws(
    () => loadWebConfig({ WEB_AUTH: 'none', WEB_HLS_UPSTREAM: 'ftp://origin' }),
    (error: unknown) => error instanceof ConfigError && /WEB_HLS_UPSTREAM/.test(error.message),
  );
});

test('the Content-Security-Policy allows scripts from the page origin only, and the chat and CDN origins', () => {
  const csp = contentSecurityPolicy(
    loadWebConfig({
      WEB_AUTH: 'none',
      WEB_CHAT_URL: 'wss://live.example.com/chat',
      WEB_HLS_BASE: 'https://cdn.example.com/hls',
    }),
  );
  assert.match(csp, /script-src 'self';/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /connect-src 'self' wss:\/\/live\.example\.com https:\/\/cdn\.example\.com;/);
  assert.match(csp, /media-src 'self' blob: https:\/\/cdn\.example\.com;/);
});
