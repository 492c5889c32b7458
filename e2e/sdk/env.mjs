// The environment every script here needs: where ingest is, its write key, and a run id that
// makes this run's message ids unique.
function mustEnv(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${process.argv[1]}: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

export const host = mustEnv("TG_HOST");
export const writeKey = mustEnv("TG_WRITE_KEY");
export const run = mustEnv("RUN");
