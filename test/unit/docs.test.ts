import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { builtInEntities } from '../../src/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const repository = 'https://github.com/meter-sync/meter-sync/';

const links = (markdown: string) =>
  [...markdown.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1] as string);

/** GitHub's anchor for a heading. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

const anchors = (markdown: string) =>
  new Set([...markdown.matchAll(/^#+ (.+)$/gm)].map((match) => slug(match[1] as string)));

describe('README links resolve on the npm page', () => {
  const readme = read('README.md');

  it('are absolute, and those into the repository name files and headings that exist', () => {
    const found = links(readme);
    expect(found.length).toBeGreaterThan(0);
    for (const link of found) {
      expect(link, link).toMatch(/^https:\/\//);
      if (!link.startsWith(repository)) continue;
      const [path, anchor] = link.slice(repository.length).split('#') as [string, string?];
      const file = path.replace(/^(blob|tree)\/main\//, '');
      expect(existsSync(join(root, file)), link).toBe(true);
      if (anchor !== undefined) expect(anchors(read(file)), link).toContain(anchor);
    }
  });

  it('points to the package repository in package.json', () => {
    const pkg = JSON.parse(read('package.json'));
    expect(pkg.repository.url).toBe(`git+${repository.replace(/\/$/, '')}.git`);
    expect(pkg.homepage.startsWith(repository.replace(/\/$/, ''))).toBe(true);
    expect(pkg.bugs.url).toBe(`${repository}issues`);
  });
});

describe('docs/builtins.md lists what the built-ins read on the Client System', () => {
  const whole = read('docs/builtins.md');
  const doc = whole.slice(whole.indexOf('## What they read on the Client System'));
  /** The `columns read` cell of the row for an entity and a Client System table. */
  const columnsRead = (entity: string, table: string) => {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${entity}\` | \`${table}\` |`));
    expect(row, `${entity} on ${table}`).toBeDefined();
    const cell = (row as string).split(' | ')[2] as string;
    return [...cell.matchAll(/`(\w+)`/g)].map((match) => match[1]).sort();
  };

  it('names every column of the table-sourced built-ins', () => {
    for (const entity of builtInEntities) {
      const source = entity.source;
      if (source.kind !== 'table') continue;
      const names = entity.columnNames.map((column) => source.columns[column] ?? column);
      expect(columnsRead(entity.name, source.table.name)).toEqual([...names].sort());
    }
  });

  it('names every column the meter query reads, per table', () => {
    const source = builtInEntities.find((entity) => entity.name === 'meter')?.source;
    if (source?.kind !== 'query') throw new Error('meter is read with a query');
    const query = source.query;
    const read = (alias: string) =>
      [
        ...new Set(
          [...query.matchAll(new RegExp(`\\b${alias}\\."(\\w+)"`, 'g'))].map((match) => match[1]),
        ),
      ].sort();
    expect(columnsRead('meter', 'meter')).toEqual(read('m'));
    expect(columnsRead('meter', 'meter_element')).toEqual(read('e'));
  });
});
