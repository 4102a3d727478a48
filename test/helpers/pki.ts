// A private PKI for TLS tests, made with the `openssl` CLI in a temp folder: a root CA,
// intermediate CAs, server and client certificates with chosen validity (an already expired one
// included). Keys are ECDSA P-256: generated in milliseconds, and accepted by Go clients
// (skopeo, containerd) as well as Node. Certificates are issued with `openssl ca` because it
// alone (in OpenSSL 3.0) takes explicit start and end dates, which an expired or not-yet-valid
// certificate needs.
import { X509Certificate, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { missingTools, run } from './tools.js'

export interface Ca {
  /** Folder holding this CA's key, certificate and `openssl ca` database. */
  dir: string
  certPath: string
  keyPath: string
  certPem: string
  /** Issuer chain above this CA (PEM, nearest first); empty for a root. */
  chainPem: string
  name: string
}

export interface IssuedCert {
  certPath: string
  keyPath: string
  /** The certificate alone. */
  certPem: string
  /** certificate + the issuing intermediates (what a server presents). */
  fullChainPath: string
  keyPem: string
  /** Upper-case hex, as X509Certificate.serialNumber and getPeerCertificate() report it. */
  serialNumber: string
  notAfter: Date
}

export interface IssueOptions {
  cn: string
  /** IP addresses and DNS names; IPs are recognised by shape. */
  sans?: string[]
  /** Validity in days from now (default 30); negative with `startDaysAgo` for an expired one. */
  days?: number
  /** Start of validity in days before now (default 1); negative for a not-yet-valid certificate. */
  startDaysAgo?: number
  /** File name stem inside the CA folder (default: cn with unsafe characters replaced). */
  name?: string
}

/** Why PKI-backed tests cannot run here, or undefined when they can. */
export function pkiUnavailable(): string | undefined {
  return missingTools('openssl').length > 0 ? 'needs openssl on PATH (apt-get install openssl)' : undefined
}

const dayMs = 86_400_000

// ASN.1 GeneralizedTime as `openssl ca -startdate/-enddate` takes it.
function asn1Time(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, 'Z')
}

function caConfig(dir: string): string {
  return [
    '[ca]',
    'default_ca = local',
    '[local]',
    `dir = ${dir}`,
    'database = $dir/index.txt',
    'new_certs_dir = $dir/issued',
    'serial = $dir/serial',
    'default_md = sha256',
    'policy = anything',
    'unique_subject = no',
    'copy_extensions = none',
    '[anything]',
    'commonName = supplied',
    '',
  ].join('\n')
}

async function initCaDir(dir: string): Promise<void> {
  await mkdir(join(dir, 'issued'), { recursive: true })
  await writeFile(join(dir, 'index.txt'), '')
  await writeFile(join(dir, 'openssl.cnf'), caConfig(dir))
}

async function newKey(path: string): Promise<void> {
  await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path])
}

/** A self-signed root CA valid for `days` (default 30). */
export async function makeCa(dir: string, options: { cn?: string; days?: number } = {}): Promise<Ca> {
  const name = options.cn ?? 'Ferry Test Root CA'
  await initCaDir(dir)
  const keyPath = join(dir, 'ca.key')
  const certPath = join(dir, 'ca.crt')
  await newKey(keyPath)
  await run('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    keyPath,
    '-out',
    certPath,
    '-days',
    String(options.days ?? 30),
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ])
  return { dir, certPath, keyPath, certPem: await readFile(certPath, 'utf8'), chainPem: '', name }
}

/** An intermediate CA issued by `parent`, in `dir`. */
export async function makeIntermediateCa(parent: Ca, dir: string, options: { cn?: string; days?: number } = {}): Promise<Ca> {
  const name = options.cn ?? 'Ferry Test Intermediate CA'
  await initCaDir(dir)
  const issued = await issue(parent, { cn: name, days: options.days ?? 30, name: 'intermediate' }, [
    'basicConstraints = critical,CA:TRUE,pathlen:0',
    'keyUsage = critical,keyCertSign,cRLSign',
  ])
  const certPath = join(dir, 'ca.crt')
  const keyPath = join(dir, 'ca.key')
  await writeFile(certPath, issued.certPem)
  await writeFile(keyPath, issued.keyPem, { mode: 0o600 })
  return { dir, certPath, keyPath, certPem: issued.certPem, chainPem: isRoot(parent) ? '' : parent.certPem + parent.chainPem, name }
}

/** A TLS server certificate (serverAuth, SANs default to 127.0.0.1 and localhost). */
export function issueServerCert(ca: Ca, options: IssueOptions): Promise<IssuedCert> {
  const sans = options.sans ?? ['127.0.0.1', 'localhost']
  return issue(ca, options, [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage = serverAuth',
    `subjectAltName = ${sans.map((s) => (/^[\d.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',')}`,
  ])
}

/** A TLS client certificate (clientAuth) for mTLS. */
export function issueClientCert(ca: Ca, options: IssueOptions): Promise<IssuedCert> {
  return issue(ca, options, [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature',
    'extendedKeyUsage = clientAuth',
  ])
}

async function issue(ca: Ca, options: IssueOptions, extensions: string[]): Promise<IssuedCert> {
  const stem = options.name ?? options.cn.replace(/[^A-Za-z0-9.-]/g, '_')
  const keyPath = join(ca.dir, `${stem}.key`)
  const csrPath = join(ca.dir, `${stem}.csr`)
  const certPath = join(ca.dir, `${stem}.crt`)
  const extPath = join(ca.dir, `${stem}.ext`)
  await newKey(keyPath)
  await run('openssl', ['req', '-new', '-key', keyPath, '-out', csrPath, '-subj', `/CN=${options.cn}`])
  await writeFile(extPath, ['[v3]', ...extensions, ''].join('\n'))
  // A fresh random serial per certificate, so a test can tell two certificates apart by serial.
  await writeFile(join(ca.dir, 'serial'), `${randomBytes(8).toString('hex').replace(/^0/, '1').toUpperCase()}\n`)
  const start = new Date(Date.now() - (options.startDaysAgo ?? 1) * dayMs)
  const end = new Date(Date.now() + (options.days ?? 30) * dayMs)
  await run('openssl', [
    'ca',
    '-batch',
    '-notext',
    '-config',
    join(ca.dir, 'openssl.cnf'),
    '-cert',
    ca.certPath,
    '-keyfile',
    ca.keyPath,
    '-in',
    csrPath,
    '-out',
    certPath,
    '-extfile',
    extPath,
    '-extensions',
    'v3',
    '-startdate',
    asn1Time(start),
    '-enddate',
    asn1Time(end),
  ])
  const certPem = await readFile(certPath, 'utf8')
  const fullChainPath = join(ca.dir, `${stem}.fullchain.crt`)
  // The chain a server sends: its own certificate, then intermediates (never the root).
  const intermediates = isRoot(ca) ? '' : ca.certPem + ca.chainPem
  await writeFile(fullChainPath, certPem + intermediates)
  const x509 = new X509Certificate(certPem)
  return {
    certPath,
    keyPath,
    certPem,
    fullChainPath,
    keyPem: await readFile(keyPath, 'utf8'),
    serialNumber: x509.serialNumber,
    notAfter: new Date(x509.validTo),
  }
}

function isRoot(ca: Ca): boolean {
  const x509 = new X509Certificate(ca.certPem)
  return x509.checkIssued(x509)
}
