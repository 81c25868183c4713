// The gateway as an Apollo Federation 2 subgraph, composed and routed by Apollo's own tools.
//
//   node tests/node/federation.mjs '<json>'
//
// The JSON names: subgraph (the URL of a register version's endpoint, e.g. …/FT/v1), entity
// (the entity type the second subgraph extends, e.g. FT_Aktoer), notes (key → text: the
// field `note` the second subgraph adds to that type), favourites (keys: the second
// subgraph's root field `favourites` returns references to those entities) and query (the
// operation sent through the router). The script
//   1. fetches the gateway's subgraph SDL (`_service { sdl }`),
//   2. serves a second, tiny subgraph (@apollo/subgraph on a plain node http server, on
//      loopback) that extends the entity with `note`,
//   3. composes both with @apollo/composition into a supergraph,
//   4. runs the query through @apollo/gateway with that supergraph (its query planner sends
//      `_entities` requests to both subgraphs),
// and prints one JSON line: the composition's errors, the router's answer, and the
// representations the second subgraph was asked for. The pytest side (tests/browser/) checks
// them against the recorded data and the requests the gateway saw.
import http from 'node:http';
import { createHash } from 'node:crypto';
import { parse, graphql } from 'graphql';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { composeServices } from '@apollo/composition';
import { ApolloGateway } from '@apollo/gateway';

const spec = JSON.parse(process.argv[2] ?? '{}');
const entity = spec.entity;

async function post(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

// 1. The gateway's subgraph SDL.
const service = await post(spec.subgraph, { query: '{ _service { sdl } }' });
if (service.errors) throw new Error(JSON.stringify(service.errors));
const gatewaySdl = service.data._service.sdl;

// 2. The second subgraph: `note` on the gateway's entity, and `favourites` as references.
const notesTypeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
  type ${entity} @key(fields: "id") {
    id: Int!
    note: String
  }
  type Query {
    favourites: [${entity}!]!
  }
`);
const asked = [];
const notesSchema = buildSubgraphSchema({
  typeDefs: notesTypeDefs,
  resolvers: {
    Query: {
      favourites: () =>
        spec.favourites.map((id) => ({ __typename: entity, id, note: spec.notes[String(id)] ?? null })),
    },
    [entity]: {
      __resolveReference(reference) {
        asked.push(reference);
        return { id: reference.id, note: spec.notes[String(reference.id)] ?? null };
      },
    },
  },
});
const notesServer = http.createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => {
    body += chunk;
  });
  request.on('end', async () => {
    const { query, variables, operationName } = JSON.parse(body);
    const result = await graphql({
      schema: notesSchema,
      source: query,
      variableValues: variables,
      operationName,
    });
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(result));
  });
});
await new Promise((resolve) => notesServer.listen(0, '127.0.0.1', resolve));
const notesUrl = `http://127.0.0.1:${notesServer.address().port}/graphql`;

let output;
let gateway;
try {
  // 3. Composition.
  const composed = composeServices([
    { name: 'dls', url: spec.subgraph, typeDefs: parse(gatewaySdl) },
    { name: 'notes', url: notesUrl, typeDefs: notesTypeDefs },
  ]);
  if (composed.errors) {
    output = { composed: false, errors: composed.errors.map(String) };
  } else {
    // 4. The router.
    gateway = new ApolloGateway({ supergraphSdl: composed.supergraphSdl, logger: quiet() });
    const { executor } = await gateway.load();
    const document = parse(spec.query);
    const result = await executor({
      request: { query: spec.query, variables: spec.variables ?? {}, http: { headers: new Map() } },
      document,
      source: spec.query,
      queryHash: createHash('sha256').update(spec.query).digest('hex'),
      operationName: null,
      context: {},
      logger: quiet(),
      metrics: {},
      cache: undefined,
      overallCachePolicy: { restrict() {}, replace() {}, policyIfCacheable: () => null },
    });
    output = {
      composed: true,
      hints: composed.hints.length,
      data: result.data ?? null,
      errors: result.errors ? result.errors.map((e) => e.message ?? String(e)) : null,
      asked,
    };
  }
} finally {
  if (gateway) await gateway.stop();
  notesServer.close();
}
console.log(JSON.stringify(output));
process.exit(output.composed && output.errors === null ? 0 : 1);

function quiet() {
  const nothing = () => {};
  return { debug: nothing, info: nothing, warn: nothing, error: console.error };
}
