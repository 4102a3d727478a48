// `ferry robot create <name>`: an account for CI systems and nodes, with a long random secret
// (256 bits) that nobody chose. With --htpasswd the file gets the bcrypt line (replacing the
// robot's old one, atomically, so a running Ferry picks it up); the secret is printed once.
import { randomBytes } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { isRepositoryName } from '../core/reference.js'
import type { CliIo } from './io.js'

const bcryptCost = 12

export function addRobotCommand(program: Command, io: CliIo): void {
  const robot = program.command('robot').description('manage robot accounts (long random secrets)')
  robot
    .command('create')
    .description('create (or re-key) a robot account and print its secret once')
    .argument('<name>', 'account name, e.g. robot-ci')
    .option('--htpasswd <file>', 'add the account to this htpasswd file (else print the line)')
    .action(async (name: string, options: { htpasswd?: string }) => {
      if (!isRepositoryName(name) || name.includes('/')) {
        io.stderr.write(`ferry: invalid robot name "${name}": use lowercase letters, digits, '.', '_' and '-'\n`)
        io.exit(2)
        return
      }
      const secret = randomBytes(32).toString('base64url')
      // Loaded here: every other command (serve above all) would carry it for nothing.
      const { default: bcrypt } = await import('bcryptjs')
      const line = `${name}:${await bcrypt.hash(secret, bcryptCost)}`
      if (options.htpasswd === undefined) {
        io.stdout.write(`${line}\n`)
        io.stderr.write(`secret for ${name} (shown once): ${secret}\n`)
        return
      }
      await upsertLine(options.htpasswd, name, line)
      io.stdout.write(`${secret}\n`)
      io.stderr.write(`${name} written to ${options.htpasswd}; its secret is on stdout (shown once)\n`)
    })
}

async function upsertLine(file: string, name: string, line: string): Promise<void> {
  const existing = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return ''
    throw err
  })
  const kept = existing.split('\n').filter((l) => l !== '' && !l.startsWith(`${name}:`))
  await writeFile(`${file}.tmp`, [...kept, line, ''].join('\n'), { mode: 0o600 })
  await rename(`${file}.tmp`, file)
}
