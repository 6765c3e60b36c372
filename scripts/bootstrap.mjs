#!/usr/bin/env node
// First step of `npm start` and `npm test` on any machine, fresh or not: checks Node, installs ffmpeg and
// nats-server from Debian packages if they are missing (and, with --browser, Chromium, which the web pages'
// tests drive), and installs npm dependencies when the lockfile changed. Plain Node with no dependencies,
// because it runs before they exist. Says what it does.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (message) => console.log(`[bootstrap] ${message}`);
const fail = (message) => {
  console.error(`[bootstrap] ${message}`);
  process.exit(1);
};

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 10))
  fail(`Node ${process.versions.node} is too old: use Node 20.10 or newer.`);

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const run = (command, args, options = {}) => {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.status !== 0) fail(`${command} ${args.join(' ')} failed (exit ${result.status}).`);
};

// System tools: ffmpeg/ffprobe (media) and nats-server (the bus), from Debian's packages. Chromium only for
// the tests (`npm test` passes --browser): playwright-core drives Debian's build, never a downloaded one.
const browser = process.argv.includes('--browser');
const missing = [
  ['ffmpeg', 'ffmpeg'],
  ['ffprobe', 'ffmpeg'],
  ['nats-server', 'nats-server'],
  ...(browser ? [['chromium', 'chromium']] : []),
].filter(([command]) => !has(command));
const packages = [...new Set(missing.map(([, pkg]) => pkg))];
if (packages.length > 0) {
  const isRoot = process.getuid?.() === 0;
  const prefix = isRoot ? [] : has('sudo') ? ['sudo'] : null;
  if (!has('apt-get') || prefix === null) {
    fail(
      `missing ${packages.join(', ')}: install them (Debian/Ubuntu: apt-get install -y ${packages.join(' ')}) and run again.`,
    );
  }
  say(`installing ${packages.join(', ')} from Debian packages (apt-get)...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const [cmd, ...pre] = [...prefix, 'apt-get'];
  run(cmd, [...pre, 'update', '-qq'], { env });
  run(cmd, [...pre, 'install', '-y', '-qq', '--no-install-recommends', ...packages], { env });
}
say(`ffmpeg: ${execFileSync('ffmpeg', ['-version'], { encoding: 'utf8' }).split('\n')[0]}`);
say(`nats-server: ${execFileSync('nats-server', ['--version'], { encoding: 'utf8' }).trim()}`);
// (Debian's chromium wrapper script prints a harmless shell warning on stderr.)
if (browser)
  say(
    `chromium: ${execFileSync('chromium', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()}`,
  );

// npm dependencies: install when node_modules is missing or older than the lockfile.
const installed = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  say('installing npm dependencies (npm ci)...');
  run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
}
say('ready');
