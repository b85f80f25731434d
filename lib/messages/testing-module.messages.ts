import { quotedDatabase } from './database-name.js';

/** ChangeStreamTestingModule options. */
export const testingModuleMessages = {
  testingOptionsNotObject: () => 'ChangeStreamTestingModule: options must be an object.',
  testingUnknownOptions: (unknown: string[], known: readonly string[]) =>
    `ChangeStreamTestingModule: unknown option(s) ${unknown.map((n) => `"${n}"`).join(', ')}. Known options: ${known.join(', ')}. ` +
    `Stores, Redis, leases and timeouts do not apply: nothing is connected.`,
  testingOptionInvalid: (name: string, value: unknown, expected: string) =>
    `ChangeStreamTestingModule: option "${name}" is ${JSON.stringify(value)}; expected ${expected}.`,
  emitDatabaseConflict: (operationType: string, built: string, named: string, own: string) =>
    `The "${operationType}" event was built for database "${built}" (its ns.db), but the emit names database "${named}". ` +
    `Build it with changeEvents.forDatabase('${named}') (or with changeEvents, for the app's database "${own}"), ` +
    `or emit it in "${built}".`,
  emitOnlyPatternsWatch: (
    operationType: string,
    database: string,
    collection: string,
    patterns: readonly (string | RegExp)[],
    connectionName: string,
  ) =>
    `The "${operationType}" event emitted on ${database}.${collection} reaches no handler: "${collection}" is watched only ` +
    `in databases ${patterns.map((p) => quotedDatabase(p, '"')).join(', ')} (connection "${connectionName}"), which "${database}" (the app's database, used as the emit named none) does not match. ` +
    `Name the tenant's database: pass { database: 'tenant_a' } (say) as the emit options, or build the event with ` +
    `changeEvents.forDatabase('tenant_a'). To check that no handler runs in "${database}", pass { database: '${database}' }.`,
};
