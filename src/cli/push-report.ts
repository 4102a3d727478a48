// The text `ferry push images` prints: progress lines, the dry-run table and the final summary.
import type { ImageResult, PushReport, PushStats } from '../bundle/results.js'

const MB = 1_000_000

function mb(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`
}

export function formatStats(stats: PushStats, seconds: number): string {
  const blobs = `blobs ${stats.blobsPushed} pushed, ${stats.blobsSkipped} skipped, ${stats.blobsMounted} mounted`
  return `[${Math.round(seconds)}s] ${stats.phase}: read ${mb(stats.readBytes)}, pushed ${mb(stats.bytesPushed)}; ${blobs}`
}

export function formatTable(images: ImageResult[], withHost: (image: ImageResult) => string): string {
  const rows = images.map((i) => [
    i.source ?? '(no name)',
    withHost(i) || '-',
    i.error !== undefined ? `ERROR ${i.error}` : (i.digest ?? ''),
  ])
  return `${alignedRows([['SOURCE', 'DESTINATION', 'DIGEST'], ...rows]).join('\n')}\n`
}

/** Rows of cells as lines, each column as wide as its widest cell. */
function alignedRows(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  return rows.map((cells) =>
    cells
      .map((cell, c) => (c < cells.length - 1 ? cell.padEnd(widths[c]!) : cell))
      .join('  ')
      .trimEnd(),
  )
}

export function formatReport(
  report: PushReport,
  failed: ImageResult[],
  withHost: (image: ImageResult) => string,
  seconds: number,
  dryRun: boolean,
  digestMap: string | undefined,
): string {
  const { stats } = report
  const count = (status: string): number => report.images.filter((i) => i.status === status).length
  const lines: string[] = []
  if (dryRun) {
    lines.push(`dry run: ${report.images.length} image(s), ${failed.length + count('failed')} with problems; nothing pushed`)
  } else {
    const rate = seconds > 0 ? stats.bytesPushed / MB / seconds : 0
    lines.push(
      ...alignedRows([
        ['IMAGES', 'PUSHED', 'UNCHANGED', 'FAILED', 'BLOBS PUSHED', 'SKIPPED', 'MOUNTED', 'BYTES', 'TIME', 'MB/S'],
        [
          String(report.images.length),
          String(count('pushed')),
          String(count('unchanged')),
          String(failed.length),
          String(stats.blobsPushed),
          String(stats.blobsSkipped),
          String(stats.blobsMounted),
          mb(stats.bytesPushed),
          `${seconds.toFixed(1)} s`,
          rate.toFixed(1),
        ],
      ]),
    )
    lines.push(`spool peak: ${mb(stats.spoolPeak)}`)
  }
  const staging = report.staging
  if (staging !== undefined && staging.kept === undefined) lines.push(`staging: ${staging.repository} emptied (${staging.removed} blob(s))`)
  if (staging?.kept !== undefined)
    lines.push(`staging: ${staging.repository} keeps ${staging.blobs - staging.removed} blob(s): ${staging.kept}`)
  if (failed.length > 0 && !dryRun) {
    lines.push('failed:')
    for (const image of failed) lines.push(`  ${image.source ?? '(no name)'} → ${withHost(image) || '?'}: ${image.error ?? 'failed'}`)
  }
  if (digestMap !== undefined) lines.push(`digest map: ${digestMap}`)
  return `${lines.join('\n')}\n`
}
