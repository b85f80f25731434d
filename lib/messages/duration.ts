/** `3 m 10 s`, `12 s`, `1 h 2 m`: for humans reading logs. */
export function duration(ms: number): string {
  if (ms >= 86_400_000)
    return `${Math.floor(ms / 86_400_000)} d ${Math.floor(ms / 3_600_000) % 24} h`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} m ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} m`;
}
