// Copies the GraphiQL build the playground serves from node_modules into gateway/static/vendor,
// with each package's licence. Run after `npm install` when upgrading GraphiQL or React:
//   node tests/node/vendor-graphiql.mjs
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, 'node_modules');
const target = join(here, '..', '..', 'gateway', 'static', 'vendor');

const files = [
  ['react', 'umd/react.production.min.js', 'react.production.min.js'],
  ['react-dom', 'umd/react-dom.production.min.js', 'react-dom.production.min.js'],
  ['graphiql', 'graphiql.min.js', 'graphiql.min.js'],
  ['graphiql', 'graphiql.min.css', 'graphiql.min.css'],
  ['@graphiql/plugin-explorer', 'dist/index.umd.js', 'graphiql-plugin-explorer.umd.js'],
  ['@graphiql/plugin-explorer', 'dist/style.css', 'graphiql-plugin-explorer.css'],
];

mkdirSync(target, { recursive: true });
const packages = new Map();
for (const [name, source, destination] of files) {
  copyFileSync(join(modules, name, source), join(target, destination));
  packages.set(name, (packages.get(name) ?? []).concat(destination));
}

// Where each package's licence text is. @graphiql/plugin-explorer ships none of its own: it is
// part of the graphql/graphiql repository (the MIT licence of LICENSE.graphiql) and bundles
// graphiql-explorer, whose licence is copied.
const licences = {
  react: ['react/LICENSE'],
  'react-dom': ['react-dom/LICENSE'],
  graphiql: ['graphiql/LICENSE'],
  '@graphiql/plugin-explorer': ['@graphiql/plugin-explorer/node_modules/graphiql-explorer/LICENSE'],
};

const lines = [
  '# Vendored third-party files',
  '',
  'The playground (`gateway/playground.py`) serves these files itself, so that it works',
  'without internet access. They are copied unchanged from the npm packages below by',
  '`node tests/node/vendor-graphiql.mjs` (versions pinned in `tests/node/package-lock.json`).',
  'Each package is under the MIT licence; its licence text is in `LICENSE.<package>`.',
  '`@graphiql/plugin-explorer` is part of the graphql/graphiql repository (licence as',
  '`LICENSE.graphiql`) and bundles `graphiql-explorer`, whose licence is',
  '`LICENSE.graphiql-plugin-explorer`.',
  '',
  '| package | version | licence | files |',
  '| --- | --- | --- | --- |',
];
for (const [name, copied] of packages) {
  const manifest = JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8'));
  const licence = `LICENSE.${name.replace('/', '-').replace('@', '')}`;
  const texts = licences[name].map((path) => readFileSync(join(modules, path), 'utf8'));
  writeFileSync(join(target, licence), texts.join('\n'));
  lines.push(`| \`${name}\` | ${manifest.version} | ${manifest.license} (\`${licence}\`) | ${copied.map((f) => `\`${f}\``).join(', ')} |`);
}
writeFileSync(join(target, 'README.md'), lines.join('\n') + '\n');
console.log(`copied ${files.length} files into ${target}`);
