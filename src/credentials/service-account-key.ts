// A Google service-account key file (the JSON `gcloud iam service-accounts keys create` writes),
// or the same JSON base64-encoded (what `_json_key_base64` logins carry). Parse errors name the
// missing or malformed field, never a value: the file holds a private key.
import { createPrivateKey } from 'node:crypto'

export interface ServiceAccountKey {
  /** The file's text exactly as written: what `_json_key` / `_json_key_base64` send as password. */
  text: string
  /** Whether the file held the JSON base64-encoded. */
  base64: boolean
  clientEmail: string
  /** PKCS#8 PEM (RSA). */
  privateKey: string
  privateKeyId: string | undefined
  /** Where the OAuth2 JWT-bearer grant is exchanged. */
  tokenUri: string
}

const defaultTokenUri = 'https://oauth2.googleapis.com/token'

export function parseServiceAccountKey(text: string): ServiceAccountKey {
  const trimmed = text.trim()
  let json = trimmed
  let base64 = false
  if (!trimmed.startsWith('{')) {
    if (!/^[A-Za-z0-9+/=\s]+$/.test(trimmed)) throw new Error('is neither JSON nor base64-encoded JSON')
    json = Buffer.from(trimmed, 'base64').toString('utf8').trim()
    base64 = true
  }
  let document: unknown
  try {
    document = JSON.parse(json)
  } catch {
    // JSON.parse's own message quotes the text around the error: never pass it on.
    throw new Error(base64 ? 'holds base64 that does not decode to JSON' : 'is not valid JSON')
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) throw new Error('is not a JSON object')
  const fields = document as Record<string, unknown>
  const text_ = (name: string): string => {
    const value = fields[name]
    if (typeof value !== 'string' || value === '') throw new Error(`has no "${name}" (is it a service-account key file?)`)
    return value
  }
  if (fields.type !== undefined && fields.type !== 'service_account') throw new Error('has a "type" other than "service_account"')
  const clientEmail = text_('client_email')
  const privateKey = text_('private_key')
  try {
    const key = createPrivateKey(privateKey)
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA')
  } catch {
    throw new Error('has a "private_key" that is not an RSA private key in PEM')
  }
  const tokenUri = typeof fields.token_uri === 'string' && fields.token_uri !== '' ? fields.token_uri : defaultTokenUri
  if (!/^https?:\/\//.test(tokenUri)) throw new Error('has a "token_uri" that is not an http(s) URL')
  const privateKeyId = typeof fields.private_key_id === 'string' && fields.private_key_id !== '' ? fields.private_key_id : undefined
  return { text: trimmed, base64, clientEmail, privateKey, privateKeyId, tokenUri }
}
