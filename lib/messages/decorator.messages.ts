/** @OnChange and @OnChangeBatch declarations. */
export const decoratorMessages = {
  onChangeNotMethod: (collection: string, where: string) =>
    `@OnChange('${collection}') on ${where}: it decorates methods only.`,
  onChangeNoCollection: (where: string) =>
    `@OnChange on ${where}: the collection name must be a non-empty string.`,
  onChangeUnknownOptions: (
    collection: string,
    where: string,
    unknown: string[],
    known: readonly string[],
  ) =>
    `@OnChange('${collection}') on ${where}: unknown option(s) ${unknown.map((key) => `"${key}"`).join(', ')}. Known options: ${known.join(', ')}.`,
  onChangeOptionInvalid: (collection: string, handler: string, option: string, rule: string) =>
    `@OnChange('${collection}') on ${handler}: "${option}" ${rule}.`,
  onChangeUnknownOperationType: (
    collection: string,
    handler: string,
    value: string,
    known: readonly string[],
    suggestion: string | undefined,
  ) =>
    `@OnChange('${collection}') on ${handler}: "operationTypes" holds '${value}', which is no change stream operation type, so the handler would never be called${suggestion ? ` (did you mean '${suggestion}'?)` : ''}. Known types: ${known.join(', ')}.`,
  streamOptionConflict: (
    collection: string,
    first: string,
    second: string,
    option: string,
    firstValue: unknown,
    secondValue: unknown,
  ) =>
    `@OnChange('${collection}'): ${first} and ${second} share one stream but set ` +
    `different "${option}" (${JSON.stringify(firstValue)} vs ${JSON.stringify(secondValue)}). ` +
    `Stream-level options must agree; move the difference into the handler, or give them the same value.`,
  onChangeBadSource: (where: string, given: string) =>
    `@OnChange on ${where}: the first argument is ${given}; expected a collection name ('orders'), ` +
    `a typed name (collection<Order>('orders')), a @nestjs/mongoose @Schema() class or a Mongoose model.`,
  onChangeModelUnresolved: (
    className: string,
    connectionName: string,
    handlers: string[],
    reason: string,
  ) =>
    `@OnChange(${className}) on ${handlers.join(', ')}: cannot tell which collection ${className} is stored in: ${reason}. ` +
    `Decorate the class with @Schema() from @nestjs/mongoose (its collection is then named as Mongoose names it), ` +
    `register its model on connection "${connectionName}" under the class name (MongooseModule.forFeature([{ name: ${className}.name, schema }])), ` +
    `or name the collection: @OnChange(collection<${className}>('<name>')).`,
  onChangeBatchUnknownOptions: (
    collection: string,
    where: string,
    unknown: string[],
    known: readonly string[],
  ) =>
    `@OnChangeBatch('${collection}') on ${where}: unknown option(s) ${unknown.map((key) => `"${key}"`).join(', ')}. Known options: ${known.join(', ')}.`,
  onChangeBatchOptionInvalid: (collection: string, handler: string, option: string, rule: string) =>
    `@OnChangeBatch('${collection}') on ${handler}: "${option}" ${rule}.`,
  batchLargerThanCheckpoint: (
    collection: string,
    handler: string,
    maxSize: number,
    maxEvents: number,
  ) =>
    `@OnChangeBatch('${collection}') on ${handler}: maxSize ${maxSize} is larger than checkpoint.maxEvents ${maxEvents}. ` +
    `Reading stops 2 × checkpoint.maxEvents (${2 * maxEvents}) events past the stored position, the bound on what a crash delivers again, so while one batch runs the next could not fill up. ` +
    `Lower maxSize to at most ${maxEvents}, or raise checkpoint.maxEvents to at least ${maxSize}.`,
};
