// Keys by the page and by the thousand: the listing and bulk deletion under a prefix that the S3
// driver's `list`, directory deletes and moves of append files share.
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3'

/** DeleteObjects takes at most this many keys per request. */
const deleteBatch = 1000

/** Every page of ListObjectsV2 under `prefix`; with `delimiter`, what lies deeper comes as CommonPrefixes. */
export async function* listPages(
  client: S3Client,
  bucket: string,
  prefix: string,
  delimiter?: string,
): AsyncGenerator<ListObjectsV2CommandOutput> {
  let token: string | undefined
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token }),
    )
    yield page
    token = page.IsTruncated ? page.NextContinuationToken : undefined
  } while (token !== undefined)
}

/** Every key under `prefix`, at any depth. */
export async function keysUnder(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = []
  for await (const page of listPages(client, bucket, prefix))
    for (const { Key } of page.Contents ?? []) if (Key !== undefined) keys.push(Key)
  return keys
}

/** Deletes `keys`: one DeleteObject for a single key, else DeleteObjects by the thousand; the first failure throws. */
export async function deleteKeys(client: S3Client, bucket: string, keys: string[]): Promise<void> {
  if (keys.length === 1) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keys[0] }))
    return
  }
  for (let i = 0; i < keys.length; i += deleteBatch) {
    const batch = keys.slice(i, i + deleteBatch)
    const result = await client.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
    )
    const failed = result.Errors?.[0]
    if (failed !== undefined) throw new Error(`delete failed for ${failed.Key ?? 'a key'}: ${failed.Code ?? 'unknown error'}`)
  }
}
