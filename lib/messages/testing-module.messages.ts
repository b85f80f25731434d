/** ChangeStreamTestingModule options. */
export const testingModuleMessages = {
  testingOptionsNotObject: () => 'ChangeStreamTestingModule: options must be an object.',
  testingUnknownOptions: (unknown: string[], known: readonly string[]) =>
    `ChangeStreamTestingModule: unknown option(s) ${unknown.map((n) => `"${n}"`).join(', ')}. Known options: ${known.join(', ')}. ` +
    `Stores, Redis, leases and timeouts do not apply: nothing is connected.`,
  testingOptionInvalid: (name: string, value: unknown, expected: string) =>
    `ChangeStreamTestingModule: option "${name}" is ${JSON.stringify(value)}; expected ${expected}.`,
};
