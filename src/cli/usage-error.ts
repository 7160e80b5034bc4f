/**
 * A command used wrongly (a bad flag value, a missing or conflicting option): main() prints
 * `podway: <message>` and exits 2, as commander's own refusals (unknown option, bad choice) do;
 * 1 stays for errors met while doing the work (docs/cli.md, "Exit codes").
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
