import { describe, expect, it } from '@jest/globals';
import { messages } from '../../lib/change-stream.messages.js';

// Messages name a database given by name in the quotes they give collection names; a pattern as written.
describe('database names in messages', () => {
  it('quotes a database name in the testing module emit error as its collection name, a RegExp as written', () => {
    const text = messages.emitOnlyPatternsWatch(
      'insert',
      'test',
      'orders',
      ['tenant_a', /^tenant_/],
      'default',
    );
    expect(text).toContain(
      '"orders" is watched only in databases "tenant_a", /^tenant_/ (connection "default"), which "test"',
    );
  });

  it('quotes a database name in the decorator errors as their collection names', () => {
    expect(
      messages.tenantStreamBackfill('@OnChange', 'orders', 'tenant_a', ['T.onOrder']),
    ).toContain(`@OnChange({ collection: 'orders', database: 'tenant_a' }) on T.onOrder`);
    expect(
      messages.tenantStreamBackfill('@OnChange', 'orders', /^tenant_/, ['T.onOrder']),
    ).toContain(`@OnChange({ collection: 'orders', database: /^tenant_/ }) on T.onOrder`);
    expect(messages.databasePatternInvalid('T.onOrder', 'orders', /^t/g, 'bad flags')).toBe(
      `@OnChange({ collection: 'orders', database: /^t/g }) on T.onOrder: the database pattern is invalid: bad flags.`,
    );
  });
});
