// The S3 half of the storage matrix. `npm test` (one tap run, so one coverage report) runs every
// test file once on the filesystem, and the files named by test/s3-matrix/*.test.ts a second time
// on S3: each of those sets FERRY_TEST_STORAGE=s3 in its own test process and imports the file.
// The helpers then give every server an s3rver of its own (test/helpers/server.ts,
// mirror-server.ts) and every `ferry serve` process S3 settings (test/helpers/ferry-process.ts).
// A test that holds only on the filesystem (sendfile counters, files under the storage root)
// checks FERRY_TEST_STORAGE itself and says why. End-to-end files are under e2e/, so that
// `npm run test:unit` leaves them out and `npm run test:e2e` takes them in.

/** Runs a test file's body with the S3 driver under every server it starts. */
export async function onS3(load: () => Promise<unknown>): Promise<void> {
  process.env.FERRY_TEST_STORAGE = 's3'
  await load()
}
