// The `streams` option's texts (database streams), spread into `messages` (change-stream.messages.ts).
export const streamScopeMessages = {
  streamsOptionInvalid: (path: string, value: unknown) =>
    `ChangeStreamModule: option "${path}" is ${JSON.stringify(value)}; expected 'collection' or 'database', ` +
    `or { default?: 'collection' | 'database', connections?: { [connectionName]: 'collection' | 'database' } }.`,
  databaseStreamOptionConflict: (
    connectionName: string,
    first: string,
    second: string,
    option: string,
    firstValue: unknown,
    secondValue: unknown,
  ) =>
    `streams: 'database' on connection '${connectionName}': ${first} and ${second} would share one database stream but set ` +
    `different "${option}" (${JSON.stringify(firstValue)} vs ${JSON.stringify(secondValue)}), which shapes every event of it. ` +
    `Give them the same value, or use streams: { connections: { '${connectionName}': 'collection' } } for that connection.`,
  startingFromReplacedPosition: (key: string, from: string, at: string) =>
    `Stream ${key} has no stored position yet: it starts at the oldest position of the streams it replaces (${from}, ${at}). ` +
    `Events the other streams had already handled since then come again (at-least-once); their keys are left for a roll-back.`,
};
