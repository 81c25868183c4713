// Apollo Client with automatic persisted queries against the gateway.
//
//   node tests/node/apq.mjs '<json>'
//
// The JSON names: url (the GraphQL endpoint), query, variables (optional), get (true: hashed
// queries go over GET, Apollo's useGETForHashedQueries) and runs (how many fresh clients run
// the query one after the other, default 2). Each run is a new ApolloClient with its own
// persisted-query link, as a new page load of a frontend app would be. Prints one JSON line
// with each run's data and errors; the pytest side (tests/browser/) checks them and the
// requests the gateway saw.
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries';

const spec = JSON.parse(process.argv[2] ?? '{}');
const document = gql(spec.query);

function sha256(text) {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

async function run() {
  const link = createPersistedQueryLink({
    sha256,
    useGETForHashedQueries: Boolean(spec.get),
  }).concat(new HttpLink({ uri: spec.url, fetch }));
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  try {
    const result = await client.query({
      query: document,
      variables: spec.variables ?? {},
      fetchPolicy: 'network-only',
    });
    return { data: result.data ?? null, error: result.error ? String(result.error) : null };
  } catch (error) {
    return { data: null, error: String(error) };
  } finally {
    client.stop();
  }
}

const runs = [];
for (let index = 0; index < (spec.runs ?? 2); index += 1) {
  runs.push(await run());
}
console.log(JSON.stringify({ runs }));
process.exit(runs.every((r) => r.error === null) ? 0 : 1);
