// Every operation of the page goes through this `graphql()`: gql.tada reads the schema's
// introspection (src/graphql-env.d.ts, written by `npm run generate` from ../schema.graphql)
// and types each document's result and variables, so `npm run check` fails when the schema
// changes under an operation.
import { initGraphQLTada } from 'gql.tada';
import type { introspection } from './graphql-env.d.ts';

export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: {
    DateTime: string;
    JSON: unknown;
  };
  // The page reads whole results where it asks for them; fragments are for reuse, not for
  // hiding fields from the components that render them.
  disableMasking: true;
}>();

export type { FragmentOf, ResultOf, VariablesOf } from 'gql.tada';
