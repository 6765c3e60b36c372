// The built pages (vite build -> WEB_PAGES_DIR): one HTML file per page, served for its route, and the
// hashed assets under /assets/ with immutable caching. Files are read once at start: a pod serves the
// pages of the image it was built from.
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
};

export interface PageFile {
  body: Buffer;
  type: string;
}

export interface Pages {
  html(name: 'watch' | 'studio' | 'ops'): PageFile;
  asset(name: string): PageFile | undefined;
}

export async function loadPages(dir: string): Promise<Pages> {
  const html = new Map<string, PageFile>();
  for (const name of ['watch', 'studio', 'ops']) {
    const body = await readFile(join(dir, `${name}.html`)).catch(() => {
      throw new Error(
        `pages not built: ${join(dir, `${name}.html`)} is missing (npm run build -w services/web)`,
      );
    });
    html.set(name, { body, type: TYPES['.html'] as string });
  }
  const assets = new Map<string, PageFile>();
  const assetDir = join(dir, 'assets');
  for (const name of await readdir(assetDir).catch(() => [] as string[])) {
    assets.set(name, {
      body: await readFile(join(assetDir, name)),
      type: TYPES[extname(name)] ?? 'application/octet-stream',
    });
  }
  return {
    html: (name) => html.get(name) as PageFile,
    asset: (name) => assets.get(name),
  };
}
