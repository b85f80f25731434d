/** An error's message for logs and status; ioredis' retry-limit error says only what matters here. */
export function errorText(error: unknown): string {
  if (error instanceof Error && error.name === 'MaxRetriesPerRequestError')
    return 'Redis is not reachable (the command was not sent)';
  return error instanceof Error ? error.message : String(error);
}
