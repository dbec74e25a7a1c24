import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as nk from '../../src/index.js';

// The README must stay true: its table of methods is the registry's, its links exist, its example runs.
const root = process.cwd();
const readme = readFileSync(join(root, 'README.md'), 'utf8');

describe('README', () => {
  it('lists exactly the registered methods (regenerate with node scripts/methods-table.mjs)', async () => {
    const script = join(root, 'scripts', 'methods-table.mjs');
    const { methodsTable } = (await import(script)) as { methodsTable: () => string };
    assert.ok(readme.includes(methodsTable()), 'README table differs from node scripts/methods-table.mjs');
    for (const e of nk.listNorms()) assert.ok(readme.includes(`[\`${e.name}\`](${e.doc})`), `README lacks ${e.name}`);
  });

  it('links only to files that exist', () => {
    for (const [, target] of readme.matchAll(/\]\(((?:docs|data|examples)\/[^)#]+)\)/g)) {
      assert.ok(existsSync(join(root, target)), `README links to missing ${target}`);
    }
  });

  it('has a quick start example that runs: ops, layers, fit, save and load', () => {
    const r = spawnSync(process.execPath, [join(root, 'examples', 'quickstart.mjs')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `quickstart failed:\n${r.stderr}`);
    assert.match(r.stdout, /reloaded, max output difference 0\n/);
    assert.match(r.stdout, new RegExp(`${nk.listNorms().length} methods:`));
  });
});
