// Prints the README's table of methods from the registry (run after `npm run build`):
//   node scripts/methods-table.mjs
// test/core/readme.test.ts checks that the README's table is this output.
import { listNorms } from '../dist/src/index.js';

const KINDS = {
  activation: 'Activation normalizations',
  'test-time': 'Test-time and continual adaptation',
  weight: 'Weight reparametrizations',
  optimizer: 'Optimizers and gradient clipping',
  architecture: 'Architectures (Transformer placements)',
  'normalization-free': 'Normalization-free training',
  tool: 'Model tools',
};

/** The markdown table of every registered method, grouped by kind. */
export function methodsTable() {
  const lines = [];
  for (const [kind, title] of Object.entries(KINDS)) {
    const entries = listNorms().filter((e) => e.kind === kind);
    if (entries.length === 0) continue;
    lines.push('', `**${title}**`, '', '| name | layer | what it computes |', '|---|---|---|');
    for (const e of entries) {
      const layer = e.layerClass ? `\`${e.layerClass}\`` : '—';
      lines.push(`| [\`${e.name}\`](${e.doc}) | ${layer} | ${e.description.replace(/\|/g, '\\|')} |`);
    }
  }
  return lines.join('\n').trim();
}

if (process.argv[1] && process.argv[1].endsWith('methods-table.mjs')) console.log(methodsTable());
